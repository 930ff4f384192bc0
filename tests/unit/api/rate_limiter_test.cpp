// placeholder: filled in by the owner of this module
#include <doctest/doctest.h>
