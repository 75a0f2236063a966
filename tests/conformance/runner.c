/* vs_conformance_runner: the conformance suite without the CLI (ctest runs it). */
#include "conformance.h"

int main(int argc, char **argv)
{
    static char name[] = "conformance";
    if (argc > 0)
        argv[0] = name;
    return vs_conformance_main(argc, argv);
}
