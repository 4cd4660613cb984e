/*
 * cmdline: the Multiboot command line as QEMU builds it (hw/i386/multiboot.c): the kernel's
 * file name as given to -kernel, a space, then the -append text. The harness boots this
 * kernel with the same -append text under QEMU and popek (see `append` in
 * testsuite/src/kernels.rs). argv[0] is the image path, which depends on the build tree,
 * so only its presence is printed; argv[1..] are printed one per line, and the last
 * character (QEMU's format ends with the append text, or the space after the name).
 */
#include "kernel.h"

extern u64 mb_magic, mb_info;

struct mb_info {
	u32 flags;
	u32 mem_lower, mem_upper;
	u32 boot_device;
	u32 cmdline;
};

#define MB_INFO_CMDLINE (1 << 2)

void kmain(void)
{
	printf("cmdline: Multiboot command line\n");
	printf("magic=0x%lx\n", mb_magic);
	const struct mb_info *info = (const struct mb_info *)mb_info;
	if (!(info->flags & MB_INFO_CMDLINE)) {
		printf("no command line FAIL\n");
		exit(1);
	}
	const char *s = (const char *)(u64)info->cmdline;
	u64 len = 0;
	while (s[len] && len < 4096)
		len++;
	/* Split on spaces as a C runtime does for argv. */
	int argc = 0;
	u64 i = 0;
	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		u64 start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (argc == 0)
			printf("argv[0]: %s\n", s[start] == '/' ? "an absolute path" : "a relative path");
		else {
			printf("argv[%d]: ", argc);
			for (u64 k = start; k < i; k++)
				putc(s[k]);
			putc('\n');
		}
		argc++;
	}
	printf("argc=%d\n", argc);
	printf("ends with %s\n", len && s[len - 1] == ' ' ? "a space" : "a non-space");
	exit(0);
}
