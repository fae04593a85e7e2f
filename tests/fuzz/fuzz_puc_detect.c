/* SPDX-License-Identifier: MIT */
/* fuzz_puc_detect.c - PUC Lua runtime detection (runtime/lua_runtime.c: the ident string, the
 * exported API, the x86 disassembly that finds luaV_execute and where it keeps L) on any ELF
 * input, with its call frame table: the result keeps the detector's contract
 * (tests/unit/support/detect_contract.h), and UNSUPPORTED says why. */
#include "tests/fuzz/fuzz_elf_input.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/unit/support/detect_contract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image img;
	struct cfi_table cfi;
	if (fuzz_elf_open_with_cfi(&img, &cfi, data, size) != 0)
		return 0;
	struct lua_runtime rt;
	const char *reason = NULL;
	enum lua_detect_result result = lua_runtime_detect(&img, &cfi, &rt, &reason);
	FUZZ_ASSERT(puc_detect_contract_kept(result, &rt), "result %d breaks the contract", result);
	FUZZ_ASSERT(result != LUA_DETECT_UNSUPPORTED || (reason && reason[0]),
		    "UNSUPPORTED without a reason");
	fuzz_elf_close_with_cfi(&img, &cfi);
	return 0;
}
