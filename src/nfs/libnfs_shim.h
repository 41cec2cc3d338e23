// The libnfs 4.0 C headers, included in one place, plus the one non-public symbol we use.
//
// rpc_process_pdu(rpc, buf, size) is libnfs's "one complete record has arrived" entry point:
// exported by libnfs.so (4.0 to 6.x, same signature) but not declared in its public headers.
// The server reads and frames records itself (bounded record size and fragment reassembly,
// header sanity checks; libnfs 4.0 reassembles fragments without a bound) and hands every
// complete, single-fragment record to it, so decoding, dispatch to the registered
// service_proc tables, PROG/PROC_UNAVAIL and GARBAGE_ARGS stay libnfs's.
#pragma once

// The libnfs headers are C; /usr/include is a system directory, so their own warnings are off.
// libnfs headers must come in this order: libnfs.h defines EXTERN for the raw ones.
// clang-format off
#include <nfsc/libnfs-zdr.h>
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
// clang-format on

extern "C" int rpc_process_pdu(struct rpc_context* rpc, char* buf, int size);
