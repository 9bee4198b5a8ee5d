package cpufeat

// Ignorable reports whether flag describes something other than an
// instruction a program may use, so that Missing leaves it out: the
// hypervisor, timekeeping, power management, the kernel's own bookkeeping,
// bug mitigations. The list is short on purpose: a flag is on it only if
// no unprivileged program can observe its absence as a missing
// instruction, and when in doubt a flag counts.
//
// The names are x86 ones. arm64's names do not collide with them except
// "cpuid", which on arm64 means the kernel emulates reads of the ID
// registers; every arm64 kernel since 4.11 does, so ignoring it is harmless.
func Ignorable(flag string) bool {
	switch flag {
	// The CPU runs under a hypervisor, or can run one. VMX and SVM and
	// their sub-features are privileged (a pod cannot execute them), and
	// they are what a bare-metal host has and a virtual machine usually
	// lacks.
	case "hypervisor", "vmx", "svm",
		"tpr_shadow", "vnmi", "flexpriority", "ept", "vpid", "ept_ad",
		"npt", "lbrv", "svm_lock", "nrip_save", "tsc_scale", "vmcb_clean", "flushbyasid",
		"decodeassists", "pausefilter", "pfthreshold", "avic", "v_vmsave_vmload", "vgif",
		"x2avic", "v_spec_ctrl":
		return true

	// Properties of the time-stamp counter and the local APIC timer. The
	// instructions themselves are "tsc" (RDTSC) and "rdtscp", which count.
	case "constant_tsc", "nonstop_tsc", "nonstop_tsc_s3", "tsc_known_freq", "tsc_reliable",
		"tsc_adjust", "tsc_deadline_timer", "arat":
		return true

	// Power and thermal management, which the kernel drives through MSRs.
	case "aperfmperf", "acpi", "tm", "tm2", "est", "pln", "pts", "dtherm", "ida", "epb",
		"hwp", "hwp_notify", "hwp_act_window", "hwp_epp", "hwp_pkg_req", "cpb", "hw_pstate":
		return true

	// Flags Linux synthesizes to steer its own code: topology, preferred
	// string and NOP sequences, CPUID faulting.
	case "rep_good", "nopl", "xtopology", "cpuid", "cpuid_fault", "extd_apicid", "amd_dcm":
		return true

	// Speculative-execution mitigations: MSR controls for the kernel and
	// the hypervisor, often hidden from or added for a virtual machine.
	case "pti", "ibrs", "ibpb", "stibp", "ssbd", "ibrs_enhanced", "amd_ssbd", "virt_ssbd",
		"amd_stibp", "md_clear", "flush_l1d", "arch_capabilities":
		return true
	}
	return false
}
