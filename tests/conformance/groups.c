/* The groups of the conformance suite, in the order they run. */
#include "suite.h"

const vsc_group *const vsc_groups[] = {
    &vsc_group_reservation,
    &vsc_group_mapping,
    &vsc_group_eviction,
    &vsc_group_events,
    &vsc_group_host,
    &vsc_group_scratch,
    &vsc_group_interception,
    &vsc_group_errors,
    &vsc_group_stress,
};
const size_t vsc_group_count = VSC_COUNT(vsc_groups);
