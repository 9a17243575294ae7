//! How the kernel confines a runner before it reads its first input: an address-space
//! limit, no new privileges, and a seccomp-BPF filter (built with rust-vmm's `seccompiler`,
//! not assembled by hand) that lets it compute and talk on its channel, and kills the whole
//! process on any other system call: no `open`, no socket, no `execve`, no `ptrace`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// The file descriptors a runner uses: its calls come on 0, its replies go on 1, and what
/// the Rust runtime says as it aborts (an allocation that failed) goes on 2.
const CALLS: u64 = 0;
const REPLIES: u64 = 1;
const DIAGNOSTICS: u64 = 2;

/// System calls allowed whatever their arguments: memory management, futexes, signal
/// returns and masks, the clock, and the ways out. An allocator, the unwinder and the
/// standard library's abort need nothing else.
const COMPUTING: &[i64] = &[
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_clock_gettime,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Confines the calling process for good. `memory_bytes` bounds its address space, so an
/// allocation over it fails (and the runner aborts) instead of taking the machine's memory.
pub(crate) fn confine(memory_bytes: u64) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: memory_bytes,
        rlim_max: memory_bytes,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(format!(
            "setting the memory limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above. A runner that aborts leaves no core file of what it held.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    let program = filter().map_err(|error| format!("building the system-call filter: {error}"))?;
    // Sets PR_SET_NO_NEW_PRIVS first, then installs the filter on every thread of the
    // process (a runner has one, but a host's `main` might have started others first).
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|error| format!("installing the system-call filter: {error}"))
}

fn filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = COMPUTING
        .iter()
        .map(|&syscall| (syscall, Vec::new()))
        .collect();
    let on_fd = |fd: u64| -> Result<SeccompRule, seccompiler::BackendError> {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            fd,
        )?])
    };
    rules.insert(libc::SYS_read, vec![on_fd(CALLS)?]);
    rules.insert(libc::SYS_write, vec![on_fd(REPLIES)?, on_fd(DIAGNOSTICS)?]);
    // abort() signals its own thread; a runner may signal nothing else (not the host).
    let own_pid = u64::from(std::process::id());
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            own_pid,
        )?])?],
    );
    let arch = std::env::consts::ARCH.try_into()?;
    SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )?
    .try_into()
}
