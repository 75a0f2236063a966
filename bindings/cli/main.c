/* vramswap: the command-line tool's entry point.
 *
 * `vramswap [--help | --version] COMMAND [OPTIONS]`: finds COMMAND in the
 * generated table (Note [CLI commands] in cli.h) and runs it with argv shifted
 * so that argv[0] is the command's name. Usage errors go to stderr with exit
 * status 2; help and version go to stdout with status 0.
 */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static void print_main_usage(FILE *out)
{
    fprintf(out,
            "usage: vramswap [--help | --version] COMMAND [OPTIONS]\n"
            "\n"
            "Run models larger than GPU memory: inspect backends and devices, and\n"
            "exercise the library.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < vs_cli_command_count; i++)
        fprintf(out, "  %-12s %s\n", vs_cli_commands[i]->name, vs_cli_commands[i]->summary);
    fprintf(out,
            "\n"
            "`vramswap COMMAND --help` describes a command's options.\n"
            "Environment: VRAMSWAP_LOG (log level), VRAMSWAP_CONF (device settings),\n"
            "VRAMSWAP_SIM (simulated device); see vramswap(1).\n");
}

int vs_cli_usage_error(const vs_cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vramswap %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", cmd->usage);
    return VS_CLI_EXIT_USAGE;
}

void vs_cli_report_status(const char *what, vs_status st)
{
    fprintf(stderr, "vramswap: %s: %s (%s)\n", what, vs_status_name(st), vs_status_str(st));
}

static const vs_cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < vs_cli_command_count; i++)
        if (strcmp(vs_cli_commands[i]->name, name) == 0)
            return vs_cli_commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_main_usage(stderr);
        return VS_CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        if (argc == 3 && strcmp(first, "help") == 0) {
            const vs_cli_command *cmd = find_command(argv[2]);
            if (cmd) {
                fputs(cmd->usage, stdout);
                return VS_CLI_EXIT_OK;
            }
            fprintf(stderr, "vramswap: unknown command '%s'\n\n", argv[2]);
            print_main_usage(stderr);
            return VS_CLI_EXIT_USAGE;
        }
        print_main_usage(stdout);
        return VS_CLI_EXIT_OK;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        printf("vramswap %s\n", vs_version());
        return VS_CLI_EXIT_OK;
    }
    const vs_cli_command *cmd = find_command(first);
    if (!cmd) {
        fprintf(stderr, "vramswap: unknown %s '%s'\n\n", first[0] == '-' ? "option" : "command", first);
        print_main_usage(stderr);
        return VS_CLI_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cmd->usage, stdout);
            return VS_CLI_EXIT_OK;
        }
    }
    return cmd->run(argc - 1, argv + 1);
}
