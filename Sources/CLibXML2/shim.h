/* Debian's libxml2 is built with ICU: its encoding.h includes the system <unicode/ucnv.h>, whose
 * definitions clash with Foundation's own ICU module in any Swift module that sees both.
 * xmlversion.h is include-guarded, so include it first and drop the flag. The ICU members of
 * xmlCharEncodingHandler are then hidden: never touch that struct's fields from Swift. */
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xmlsave.h>
