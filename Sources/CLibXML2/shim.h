#ifndef VPHONE_CLIBXML2_SHIM_H
#define VPHONE_CLIBXML2_SHIM_H
#include <libxml/xmlversion.h>
/* Debian builds libxml2 with ICU, so libxml/encoding.h pulls in the system's <unicode/ucnv.h>; Foundation carries
   its own ICU whose UErrorCode differs, and a module that sees both fails to build ("UErrorCode has different
   definitions in different modules"). vphone never touches xmlCharEncodingHandler (the only type whose layout the
   ICU fields change; it is used through pointers only), so the ICU part of the headers is left out. */
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlmemory.h>

/// `xmlFree` is a global function pointer, which Swift 6 refuses to touch as shared mutable state.
static inline void vphone_xmlFree(void *p) { xmlFree(p); }
#endif
