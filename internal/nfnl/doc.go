// Package nfnl decodes what the kernel writes into a NETLINK_NETFILTER
// socket for nfmirror, and builds what nfmirror writes back: NFLOG packet
// messages (NFULNL_MSG_PACKET, several per datagram), NFQUEUE packet
// messages and batch verdicts, and the configuration attributes of both
// (include/uapi/linux/netfilter/nfnetlink_log.h, nfnetlink_queue.h). It is
// pure code: the sockets live in package mirror.
package nfnl

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// OpError is an error the kernel reported in a netlink error message, with
// its errno kept: errors.Is(err, unix.EPERM) works on it.
type OpError struct {
	Op  string
	Err unix.Errno
}

func (e *OpError) Error() string { return fmt.Sprintf("%s: %v", e.Op, e.Err) }

// Unwrap returns the errno.
func (e *OpError) Unwrap() error { return e.Err }
