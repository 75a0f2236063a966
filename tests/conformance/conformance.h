/* The backend conformance suite, as a library the CLI links
 * (`vramswap conformance`) and a standalone runner (vs_conformance_runner).
 *
 * One suite of backend-neutral tests of the public API, run against any backend
 * and device (Note [Conformance suite] in suite.h; docs/conformance.md lists
 * the groups). Needs only libvramswap and the C library.
 */
#ifndef VS_CONFORMANCE_H
#define VS_CONFORMANCE_H

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is the command name ("conformance"). Options:
 *   --backend NAME   backend to test (default "auto": the first GPU backend
 *                    with a device, else "sim")
 *   --device N       device ordinal (default 0)
 *   --group G        run only group G, or only test G/NAME; repeatable and
 *                    comma-separated
 *   --list           list the tests and exit
 *   --json           print one JSON object instead of text
 *   -v, --verbose    library log and notes on stderr; --list with descriptions
 *   --no-fork        run tests in this process (debugging: a crash ends the run)
 *   --timeout S      seconds per test before it is killed (default 60)
 *   --seed N         seed of the random data (default 1)
 *   -h, --help
 * Prints one line per test, a per-group table and "N passed, N failed, N
 * skipped". Returns 0 when no test failed (skips allowed), 1 when any failed or
 * the device could not be opened, 2 on a usage error. */
int vs_conformance_main(int argc, char **argv);

/* The option summary above as text (for `vramswap conformance --help`). */
extern const char vs_conformance_usage[];

#ifdef __cplusplus
}
#endif
#endif /* VS_CONFORMANCE_H */
