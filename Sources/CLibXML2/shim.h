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

/* libxml2 reports a few problems (bytes that are not valid in the encoding a file declares, I/O) through its
   "generic" error channel, which prints to stderr, instead of the structured hook of the parser context. A hostile
   file must not write to the phone's stderr (fleet mode runs thousands of phones in one process), so the channel is
   silenced, per thread as libxml2 keeps it, before each parse; the parser finds the encoding failure on the input
   buffer instead. The handler is variadic, which Swift cannot define. */
static void vphone_xml_ignore_generic_error(void *context, const char *message, ...)
    __attribute__((unused));
static void vphone_xml_ignore_generic_error(void *context, const char *message, ...) {
    (void)context;
    (void)message;
}
static inline void vphone_xml_silence_generic_errors(void) {
    xmlSetGenericErrorFunc(NULL, vphone_xml_ignore_generic_error);
}
#endif
