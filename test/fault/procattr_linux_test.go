package fault

import "syscall"

// childAttr makes the kernel kill a child when this process dies, so that
// no etcd member or medfleetd outlives a test binary that was killed (a
// timeout) before its cleanups ran.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
