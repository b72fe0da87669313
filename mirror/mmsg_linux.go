package mirror

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// sendBatchMax is how many frames a writer hands the kernel in one sendmmsg.
const sendBatchMax = 64

// frameBatch collects frames for one AF_PACKET socket with PACKET_VNET_HDR
// and sends them with as few sendmmsg calls as the kernel allows. Each frame
// is a virtio_net_hdr, an optional link-layer header and the rest; headers
// are copied into the batch's own arrays, the rest is not copied and must
// stay untouched until flush returns. The arrays are allocated once.
type frameBatch struct {
	fd   int
	msgs [sendBatchMax]unix.Mmsghdr
	iovs [sendBatchMax][3]unix.Iovec
	vhs  [sendBatchMax][pkt.VnetHdrLen]byte
	lls  [sendBatchMax][batchHdrMax]byte
	sas  [sendBatchMax]unix.RawSockaddrLinklayer
	who  [sendBatchMax]int // the caller's index of each frame
	n    int
}

// maxLinkHdr is the longest link-layer header the Writer puts in front of
// a copy: Ethernet with one 802.1Q tag.
const maxLinkHdr = 18

// batchHdrMax is the longest header part a frame of a batch may have: a
// link-layer header, or for a collector an Ethernet header and the outer
// headers of a tunnel packet (encap.MaxHead).
const batchHdrMax = 128

// full reports whether another frame would not fit.
func (b *frameBatch) full() bool { return b.n == sendBatchMax }

// add queues one frame: the virtio_net_hdr vh (nil: none to do), the
// header part link (at most batchHdrMax bytes, copied; may be nil) and data.
// proto, when not 0, is the ethertype to send a headerless frame with (a
// device without a link-layer header). who is handed back to flush's failure
// callback.
func (b *frameBatch) add(vh *[pkt.VnetHdrLen]byte, link, data []byte, ifindex int, proto uint16, who int) {
	i := b.n
	b.n++
	if vh != nil {
		b.vhs[i] = *vh
	} else {
		b.vhs[i] = [pkt.VnetHdrLen]byte{}
	}
	iov := &b.iovs[i]
	iov[0].Base = &b.vhs[i][0]
	iov[0].SetLen(pkt.VnetHdrLen)
	n := 1
	if len(link) > 0 {
		copy(b.lls[i][:], link)
		iov[n].Base = &b.lls[i][0]
		iov[n].SetLen(len(link))
		n++
	}
	if len(data) > 0 {
		iov[n].Base = unsafe.SliceData(data)
		iov[n].SetLen(len(data))
		n++
	}
	h := &b.msgs[i].Hdr
	*h = unix.Msghdr{Iov: &iov[0]}
	h.SetIovlen(n)
	if proto != 0 {
		b.sas[i] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto), Ifindex: int32(ifindex)}
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(&b.sas[i])), unix.SizeofSockaddrLinklayer
	}
	b.who[i] = who
}

// flush sends every queued frame, without waiting (MSG_DONTWAIT). A frame the
// kernel refuses is reported to failed with its error, and the ones after it
// are still tried. It returns how many were sent.
func (b *frameBatch) flush(failed func(who int, err error)) int {
	sent, _ := b.flushBytes(failed)
	return sent
}

// flushBytes is flush that also returns how many bytes the frames sent
// carried, their virtio_net_hdr not counted.
func (b *frameBatch) flushBytes(failed func(who int, err error)) (sent, bytes int) {
	for i := 0; i < b.n; {
		k, err := sendmmsg(b.fd, b.msgs[i:b.n], unix.MSG_DONTWAIT)
		if err != nil {
			failed(b.who[i], err) // the first frame of the call failed
			i++
			continue
		}
		if k == 0 { // not expected from the kernel; never spin
			k = 1
		}
		for j := i; j < i+k; j++ {
			bytes += int(b.msgs[j].Len) - pkt.VnetHdrLen
		}
		sent += k
		i += k
	}
	b.n = 0
	return sent, bytes
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
