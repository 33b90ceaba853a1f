#include "CFTVMShim.h"
int ftvm_placeholder(void) { return 0; }
