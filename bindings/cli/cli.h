/* The vramswap command-line tool: what every subcommand shares.
 *
 * Note [CLI commands]
 * -------------------
 * Each subcommand lives in its own file and defines one vs_cli_command named
 * vs_cli_cmd_<name> (e.g. vs_cli_cmd_info in info.c). bindings/cli/CMakeLists.txt
 * lists the commands once (VS_CLI_COMMANDS) and generates the table main.c
 * dispatches on, so adding a command is: write <name>.c, add <name> to the list.
 *
 * A command's run() gets argv with argv[0] = the command name and returns the
 * process exit status: VS_CLI_EXIT_OK, VS_CLI_EXIT_FAILURE (the work failed:
 * an error status, a checksum mismatch) or VS_CLI_EXIT_USAGE (bad arguments;
 * the command has printed its usage on stderr). `vramswap CMD --help` prints the
 * usage on stdout and exits 0. The tool uses only the public API (vramswap.h,
 * vramswap/sim.h).
 */
#ifndef VS_CLI_H
#define VS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vramswap.h"

enum {
    VS_CLI_EXIT_OK = 0,
    VS_CLI_EXIT_FAILURE = 1,
    VS_CLI_EXIT_USAGE = 2
};

typedef struct vs_cli_command {
    const char *name;     /* as typed: "info" */
    const char *summary;  /* one line for `vramswap --help` */
    const char *usage;    /* full help: synopsis and options, ends with a newline */
    int (*run)(int argc, char **argv);
} vs_cli_command;

/* The generated table (commands.c), in the order `vramswap --help` lists them. */
extern const vs_cli_command *const vs_cli_commands[];
extern const size_t vs_cli_command_count;

/* Print "vramswap CMD: <message>" and the command's usage on stderr; returns
 * VS_CLI_EXIT_USAGE so a command can `return vs_cli_usage_error(...)`. */
int vs_cli_usage_error(const vs_cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "vramswap: <what>: VS_ERR_... (description)" on stderr. */
void vs_cli_report_status(const char *what, vs_status st);

/* ---------------------------------------------------------------- parsing (parse.c) */

/* Long options only: "--name", "--name VALUE" or "--name=VALUE". */
typedef struct vs_cli_option {
    const char *name;     /* without the dashes: "layers" */
    bool has_value;
} vs_cli_option;

typedef struct vs_cli_args {
    int argc;
    char **argv;          /* argv[0] is the command name */
    int next;             /* index of the next argument to read */
    char error[160];      /* set when vs_cli_next_option returns -2 */
} vs_cli_args;

void vs_cli_args_init(vs_cli_args *args, int argc, char **argv);
/* Index into `opts` (terminated by a NULL name) of the next option, with its
 * value in *value (NULL for flags); -1 when the arguments are exhausted; -2 on
 * an unknown option, a missing or unexpected value, or a positional argument
 * (args->error says which). */
int vs_cli_next_option(vs_cli_args *args, const vs_cli_option *opts, const char **value);

/* A byte count: decimal digits with an optional binary suffix K, M, G or T
 * (also KiB/KB/k..., all powers of 1024) or B. false on anything else or overflow. */
bool vs_cli_parse_size(const char *text, uint64_t *out);
/* A decimal integer in [min, max]. */
bool vs_cli_parse_int(const char *text, long long min, long long max, long long *out);

/* ---------------------------------------------------------------- output (format.c) */

/* "8.0 MiB", "1.5 GiB", "512 B": buf must hold at least 32 bytes; returns buf. */
const char *vs_cli_format_size(uint64_t bytes, char *buf, size_t cap);
/* Write `text` as a JSON string literal (quotes included, escaped). */
void vs_cli_json_string(FILE *out, const char *text);
/* Seconds on a monotonic clock. */
double vs_cli_now(void);

/* ---------------------------------------------------------------- residency (residency.c) */

/* Render a VBAR's residency map (vs_vbar_residency) as one character per group
 * of pages: 'P' when any page of the group is pinned, 'R' when all are resident,
 * 'r' when some are, '.' when none. groups = number of characters wanted (pages
 * are spread evenly; a group is at least one page). out must hold groups + 1. */
void vs_cli_render_residency(const uint8_t *map, size_t pages, size_t groups, char *out);

#endif /* VS_CLI_H */
