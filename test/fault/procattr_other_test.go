//go:build !linux

package fault

import "syscall"

// childAttr has nothing to add where the kernel has no parent-death
// signal: the etcd members watch their parent themselves, and t.Cleanup
// kills every child of a test that ends normally.
func childAttr() *syscall.SysProcAttr { return nil }
