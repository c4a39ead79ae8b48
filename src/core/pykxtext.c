/* pykxtext.c - PyKX's remote-function texts (qpeach/pykx.h), as PyKX
 * 3.1.9 sends them: its lambdas carry the indentation of the triple-quoted
 * strings in its source. The unit tests check their SHA-256. */
#include "qpeach/pykx.h"

const char qp_pykx_q0[] = "`pykx in key `";
const char qp_pykx_q2[] =
    "\n"
    "                {[alias;library]\n"
    "                  alias:string alias;\n"
    "                  library:string library;\n"
    "                  @[.pykx.pyexec;\n"
    "                    \"import \",library,\" as \",alias;\n"
    "                    {'\"Failed to load library '\",x,\n"
    "                      \"' with alias '\",y,\"' with error: \",z}[library;alias]\n"
    "                    ]}\n"
    "                ";
const char qp_pykx_q3[] =
    "\n"
    "                                           {[code;func_name;args;lenargs]\n"
    "                                             .pykx.pyexec trim \"\n\" sv 1_\"\n\" vs code;\n"
    "                                             func:.pykx.get[func_name;<];\n"
    "                                             $[lenargs;func . args;func[]]\n"
    "                                             }\n"
    "                                           ";
