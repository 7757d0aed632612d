/*
 * What the project's Node-API addons (the .c files here) share: a
 * TypeError thrown back to JavaScript for arguments of the wrong kind,
 * returning NULL so a callback can `return throw_type(env, "...")`.
 */
#ifndef REELCDN_NAPI_ERRORS_H
#define REELCDN_NAPI_ERRORS_H
#include <node_api.h>

static inline napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

#endif
