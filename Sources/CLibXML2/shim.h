#ifndef VPHONE_CLIBXML2_SHIM_H
#define VPHONE_CLIBXML2_SHIM_H
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlmemory.h>

/// `xmlFree` is a global function pointer, which Swift 6 refuses to touch as shared mutable state.
static inline void vphone_xmlFree(void *p) { xmlFree(p); }
#endif
