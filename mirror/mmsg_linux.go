package mirror

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendBatchMax is how many copies a sink hands the kernel in one sendmmsg.
const sendBatchMax = 64

// mmsgBatch collects datagrams for one socket and sends them with as few
// sendmmsg calls as the kernel allows. Its arrays are allocated once; the
// datagrams themselves are not copied, so they must stay untouched until
// flush returns.
type mmsgBatch struct {
	fd   int
	hdrs [sendBatchMax]unix.Mmsghdr
	iovs [sendBatchMax]unix.Iovec
	sas  [sendBatchMax]unix.RawSockaddrInet6 // large enough for either family
	who  [sendBatchMax]int                   // the caller's index of each datagram
	n    int
}

// full reports whether another datagram would not fit.
func (b *mmsgBatch) full() bool { return b.n == sendBatchMax }

// add queues b to be sent to addr (nil, 4 or 16 bytes: none, IPv4, IPv6).
// who is handed back to flush's failure callback.
func (b *mmsgBatch) add(data []byte, addr []byte, who int) {
	i := b.n
	b.n++
	b.iovs[i].Base = unsafe.SliceData(data)
	b.iovs[i].SetLen(len(data))
	h := &b.hdrs[i].Hdr
	*h = unix.Msghdr{Iov: &b.iovs[i], Iovlen: 1}
	switch len(addr) {
	case 4:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&b.sas[i]))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte(addr)}
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(sa)), unix.SizeofSockaddrInet4
	case 16:
		b.sas[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: [16]byte(addr)}
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(&b.sas[i])), unix.SizeofSockaddrInet6
	}
	b.who[i] = who
}

// flush sends every queued datagram, without waiting (MSG_DONTWAIT). A
// datagram the kernel refuses is reported to failed with its error, and the
// ones after it are still tried. It returns how many were sent.
func (b *mmsgBatch) flush(failed func(who int, err error)) int {
	sent := 0
	for i := 0; i < b.n; {
		k, err := sendmmsg(b.fd, b.hdrs[i:b.n], unix.MSG_DONTWAIT)
		if err != nil {
			failed(b.who[i], err) // the first datagram of the call failed
			i++
			continue
		}
		if k == 0 { // not expected from the kernel; never spin
			k = 1
		}
		sent += k
		i += k
	}
	b.n = 0
	return sent
}

// sendmmsg wraps the system call, which golang.org/x/sys/unix lacks. It
// returns how many of msgs were sent; an error means the first one failed.
func sendmmsg(fd int, msgs []unix.Mmsghdr, flags int) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(unsafe.SliceData(msgs))), uintptr(len(msgs)), uintptr(flags), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}
