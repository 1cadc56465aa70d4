// CZlib shim: zlib, used to inflate the .gz IDX files and to write .gz fixtures in tests.
#include <zlib.h>
