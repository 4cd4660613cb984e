/*
 * identity: what software learns from CPUID about the CPU it runs on, printed as facts that
 * hold for QEMU's `-cpu max,vendor=GenuineIntel` and for popek's model alike: a vendor
 * software knows, the hypervisor bit and the hypervisor leaves, a brand string, a
 * family/model coherent with the features, the extended leaves and sane address sizes.
 * The values themselves differ (QEMU max has AVX and more leaves; popek reports the host's
 * vendor and a Goldmont Plus or Puma signature): those lines start with `~`.
 * Oracle: QEMU TCG, and the SDM's CPUID chapter for what "coherent" means (QEMU's family
 * 0xF with SSE4.2 is not: that line is `~`, and popek's family 6 model 0x7A is).
 */
#include "kernel.h"

static u32 a, b, c, d;

static void leaf(u32 l, u32 s) { cpuid(l, s, &a, &b, &c, &d); }

static int same(const char *x, const char *y, int n)
{
	for (int i = 0; i < n; i++)
		if (x[i] != y[i])
			return 0;
	return 1;
}

void kmain(void)
{
	printf("identity: start\n");

	/* Leaf 0: the vendor, EBX EDX ECX. */
	leaf(0, 0);
	u32 max_basic = a;
	char vendor[13];
	u32 regs[3] = {b, d, c};
	memcpy(vendor, regs, 12);
	vendor[12] = 0;
	int intel = same(vendor, "GenuineIntel", 12), amd = same(vendor, "AuthenticAMD", 12);
	printf("vendor: %s\n", intel || amd ? "known" : "unknown");
	printf("~vendor string: %s\n", vendor);
	ok("max basic leaf >= 7", max_basic >= 7);

	/* Leaf 1: signature, features, hypervisor bit. */
	leaf(1, 0);
	u32 sig = a, ebx1 = b, ecx1 = c, edx1 = d;
	u32 base_family = (sig >> 8) & 0xF, family = base_family, model = (sig >> 4) & 0xF;
	if (base_family == 0xF)
		family += (sig >> 20) & 0xFF;
	if (base_family == 6 || base_family == 0xF)
		model |= ((sig >> 16) & 0xF) << 4;
	printf("~family 0x%x model 0x%x stepping %u\n", family, model, sig & 0xF);
	int sse42 = (ecx1 >> 20) & 1, popcnt = (ecx1 >> 23) & 1;
	printf("sse4.2=%d popcnt=%d\n", sse42, popcnt);
	/* SSE4.2 came with Intel family 6 (Nehalem) and AMD family 0x10+ (0x15 for SSE4.2). */
	/* QEMU's max CPU keeps qemu64's family 0xF model 0x6B with vendor=GenuineIntel: no
	 * such Intel part has SSE4.2 (the SDM's family 0xF is the Pentium 4), so the value is
	 * compared only by the `~` rule. */
	printf("~family coherent with sse4.2: %d\n",
	       !sse42 || (intel && family == 6) || (amd && family >= 0x10));
	ok("signature bits 31:28 and 15:14 reserved zero", (sig & 0xF000C000) == 0);
	printf("clflush line %u bytes\n", ((ebx1 >> 8) & 0xFF) * 8);
	printf("hypervisor bit=%u\n", ecx1 >> 31);
	printf("fpu=%u tsc=%u msr=%u pae=%u cx8=%u apic=%u cmov=%u pat=%u fxsr=%u sse2=%u\n",
	       edx1 & 1, (edx1 >> 4) & 1, (edx1 >> 5) & 1, (edx1 >> 6) & 1, (edx1 >> 8) & 1,
	       (edx1 >> 9) & 1, (edx1 >> 15) & 1, (edx1 >> 16) & 1, (edx1 >> 24) & 1,
	       (edx1 >> 26) & 1);
	printf("mtrr=%u\n", (edx1 >> 12) & 1);
	/* AVX needs XSAVE (the OS enables the YMM state through XCR0). */
	int avx = (ecx1 >> 28) & 1, xsave = (ecx1 >> 26) & 1;
	ok("avx implies xsave", !avx || xsave);
	printf("~avx=%d xsave=%d\n", avx, xsave);

	/* The hypervisor leaves. */
	leaf(0x40000000, 0);
	u32 hv_max = a;
	char hv[13];
	u32 hregs[3] = {b, c, d};
	memcpy(hv, hregs, 12);
	hv[12] = 0;
	printf("~hypervisor leaf max 0x%x signature %s\n", hv_max, hv);
	/* QEMU TCG reports "TCGTCGTCGTCG" up to 0x40000001; popek KVM's, up to 0x40000010. */
	printf("hypervisor leaves present where the bit says so: %d\n",
	       !(ecx1 >> 31) || (hv_max >= 0x40000001 && hv_max < 0x40010000));

	/* Extended leaves. */
	leaf(0x80000000, 0);
	u32 max_ext = a;
	ok("max extended leaf >= 0x80000008", max_ext >= 0x80000008 && max_ext < 0x80010000);
	leaf(0x80000001, 0);
	printf("lm=%u nx=%u syscall=%u rdtscp=%u lahf_lm=%u\n", (d >> 29) & 1, (d >> 20) & 1,
	       (d >> 11) & 1, (d >> 27) & 1, c & 1);

	/* The brand string: 48 bytes, NUL-terminated, not empty. */
	char brand[49];
	for (u32 i = 0; i < 3; i++) {
		leaf(0x80000002 + i, 0);
		u32 r[4] = {a, b, c, d};
		memcpy(brand + 16 * i, r, 16);
	}
	brand[48] = 1;
	int len = 0;
	while (len < 48 && brand[len])
		len++;
	ok("brand string NUL-terminated within 48 bytes", len < 48);
	ok("brand string not empty", len > 0);
	brand[len < 48 ? len : 48] = 0;
	printf("~brand: %s\n", brand);

	/* Address sizes. */
	leaf(0x80000008, 0);
	u32 phys = a & 0xFF, lin = (a >> 8) & 0xFF;
	printf("~physical address bits %u linear %u\n", phys, lin);
	ok("physical address bits 36..52", phys >= 36 && phys <= 52);
	ok("linear address bits 48 or 57", lin == 48 || lin == 57);

	/* Beyond the maximum basic leaf: Intel returns the highest basic leaf's data, AMD
	 * zeros; checked only for not faulting. */
	leaf(max_basic + 1, 0);
	printf("leaf max+1 executed\n");
	printf("identity: done\n");
}
