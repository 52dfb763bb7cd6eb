#ifndef METERTRUST_CPKCS11_SHIM_H
#define METERTRUST_CPKCS11_SHIM_H
// PKCS#11 v2.40/3.0 API types and constants from p11-kit's header. The module (SoftHSM2 or a vendor's) is loaded
// with dlopen at run time, so nothing here is linked.
#include <p11-kit/pkcs11.h>
#endif
