/* vramswap conformance: the backend conformance suite (tests/conformance),
 * shipped in the tool so that a machine with a GPU needs nothing else to run it. */
#include "cli.h"
#include "conformance.h"

static int run_conformance(int argc, char **argv)
{
    return vs_conformance_main(argc, argv);
}

const vs_cli_command vs_cli_cmd_conformance = {
    .name = "conformance",
    .summary = "check that a backend behaves as the core expects",
    .usage = vs_conformance_usage,
    .run = run_conformance,
};
