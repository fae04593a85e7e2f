/* SPDX-License-Identifier: MIT */
/* layer_probe.c - one header of some layer, compiled against one layer's library only
 * (tests/layers.cmake): it compiles when that library may use the header's layer. */
#include LAYER_PROBE_HEADER

int layer_probe;
