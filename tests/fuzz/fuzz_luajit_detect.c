/* SPDX-License-Identifier: MIT */
/* fuzz_luajit_detect.c - LuaJIT detection (runtime/luajit/: the mode, the VM entries, layouts read
 * from machine code, fast function names from the library init data) on any ELF input, with its
 * call frame table: the result keeps the detector's contract
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
	struct luajit_runtime rt;
	const char *reason = NULL;
	enum lua_detect_result result = luajit_detect(&img, &cfi, &rt, &reason);
	FUZZ_ASSERT(luajit_detect_contract_kept(result, &rt), "result %d breaks the contract", result);
	FUZZ_ASSERT(result != LUA_DETECT_UNSUPPORTED || (reason && reason[0]),
		    "UNSUPPORTED without a reason");
	luajit_runtime_free(&rt);
	fuzz_elf_close_with_cfi(&img, &cfi);
	return 0;
}
