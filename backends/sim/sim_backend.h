/* Shared between the sim backend's ops table (backend.c) and the exported
 * vs_sim_* functions (sim_api.c). Hidden symbols. */
#ifndef VRAMSWAP_SIM_BACKEND_H
#define VRAMSWAP_SIM_BACKEND_H

#include "vramswap/backend.h"
#include "simdev.h"

/* Apply the VRAMSWAP_SIM environment configuration once, unless the
 * simulator was configured explicitly before (vs_sim_configure). */
void sim_ensure_config(void);
/* VS_ERR_INVALID_ARGUMENT while a malformed VRAMSWAP_SIM is in force. */
vs_status sim_env_status(void);

/* Interception state (Note [Sim interception] in sim_api.c). */
vs_status sim_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len);
vs_status sim_intercept_remove(void);

/* Log a failed simdev call the way a driver error is logged, then return st. */
vs_status sim_report(vs_status st, const char *what);

#endif /* VRAMSWAP_SIM_BACKEND_H */
