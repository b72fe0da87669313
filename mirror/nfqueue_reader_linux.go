package mirror

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"
	"unsafe"

	"github.com/nfmirror/nfmirror/internal/nfnl"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nfqueueReader is nfmirror's own reader of a lossless channel's NFQUEUE
// queue: a NETLINK_NETFILTER socket configured through mdlayher/netlink, read
// with recvmmsg, up to nfqueueReadBatch queued packets per system call, each
// decoded in place (nfqueue_msg.go). After every read it takes the copies
// and accepts all the packets it read with one batch verdict, so no packet
// waits for a timer and there is one verdict message per read, not per
// packet.
//
// The queue is configured fail-open, as with go-nfqueue: when nfqueueMaxLen
// packets wait, the kernel accepts further ones uncopied.
type nfqueueReader struct {
	cs      *chanState
	conn    *netlink.Conn
	raw     syscall.RawConn
	log     *slog.Logger
	bufs    [][]byte
	iovs    []unix.Iovec
	hdrs    []unix.Mmsghdr
	msg     nfnl.NFQUEUEMsg
	verdict [nfnl.NfqVerdictMsgSize]byte
	maxID   uint32
	haveID  bool
	now     time.Time // when the packets being decoded were read
}

// nfqueueReadBatch is how many queued packets one recvmmsg reads at most.
const nfqueueReadBatch = 64

// openNFQUEUEReader binds the channel's queue in the namespace netns (0 = the
// current one): copy mode packet up to the snaplen, fail-open at
// nfqueueMaxLen.
func openNFQUEUEReader(cs *chanState, netns int, log *slog.Logger) (*nfqueueReader, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	snap := cs.ch.Snaplen
	if snap == 0 || snap > 0xffff {
		snap = 0xffff
	}
	r := &nfqueueReader{cs: cs, conn: conn, log: log}
	// Each buffer holds a whole message: the copy plus its attributes.
	size := int(snap) + 1024
	r.bufs = make([][]byte, nfqueueReadBatch)
	r.iovs = make([]unix.Iovec, nfqueueReadBatch)
	r.hdrs = make([]unix.Mmsghdr, nfqueueReadBatch)
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.Iovlen = 1
	}
	if err := r.configure(snap); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

func (r *nfqueueReader) configure(snap uint32) error {
	q := r.cs.ch.Num
	raw, err := r.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	r.raw = raw
	setReadBuffer(r.conn, raw, nflogReadBuf, r.log)
	params := binary.BigEndian.AppendUint32(nil, snap)
	params = append(params, nfnl.NfqnlCopyPacket)
	steps := []struct {
		what  string
		attrs []netlink.Attribute
	}{
		{"bind", []netlink.Attribute{{Type: nfnl.NfqaCfgCmd, Data: []byte{nfnl.NfqnlCfgCmdBind, 0, 0, 0}}}},
		{"set copy mode", []netlink.Attribute{{Type: nfnl.NfqaCfgParams, Data: params}}},
		{"set queue length", []netlink.Attribute{{Type: nfnl.NfqaCfgQueueMaxLen, Data: be32(nfqueueMaxLen)}}},
		{"set fail-open and GSO", []netlink.Attribute{
			{Type: nfnl.NfqaCfgFlags, Data: be32(nfnl.NfqaCfgFFailOpen | nfnl.NfqaCfgFGSO)},
			{Type: nfnl.NfqaCfgMask, Data: be32(nfnl.NfqaCfgFFailOpen | nfnl.NfqaCfgFGSO)},
		}},
	}
	for _, s := range steps {
		if err := nfnlConfig(r.conn, nfnl.NfnlSubsysQueue<<8|nfnl.NfqnlMsgConfig, q, s.attrs); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// Run reads queued packets until ctx is cancelled.
func (r *nfqueueReader) Run(ctx context.Context) error {
	if err := readNetlink(ctx, r.conn, &r.cs.cnt.enobufs, r.recv, r.datagrams); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// datagrams decodes the n datagrams recv read, then accepts their packets.
func (r *nfqueueReader) datagrams(n int) {
	r.now = time.Now() // for packets the kernel does not stamp
	for i := range n {
		l := int(r.hdrs[i].Len)
		if r.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || l > len(r.bufs[i]) {
			r.cs.cnt.parseErrors.Add(1)
			l = min(l, len(r.bufs[i])) // the packet id still comes first
		}
		if err := nfnl.ParseNFQUEUEDatagram(r.bufs[i][:l], &r.msg, r.handle); err != nil {
			if errors.Is(err, nfnl.ErrShortMessage) {
				r.cs.cnt.parseErrors.Add(1)
			} else {
				r.cs.cnt.verdictErrs.Add(1) // the kernel refused a verdict
			}
			r.log.Debug("decode nfqueue datagram", "queue", r.cs.ch.Num, "err", err)
		}
	}
	r.accept()
}

// handle takes the copy of one queued packet and notes its id for the
// verdict.
func (r *nfqueueReader) handle(m *nfnl.NFQUEUEMsg) {
	if !m.HasID {
		r.cs.cnt.parseErrors.Add(1)
		return
	}
	if !r.haveID || int32(m.ID-r.maxID) > 0 {
		r.maxID, r.haveID = m.ID, true
	}
	if m.Payload == nil {
		r.cs.cnt.parseErrors.Add(1)
		return
	}
	orig := 0
	if int(m.CapLen) > len(m.Payload) {
		orig = int(m.CapLen)
	}
	hook := hookFromKernel(m.Family, m.Hook)
	r.cs.deliver(copyMeta{
		ruleID:  -1,
		origLen: orig,
		hook:    hook,
		dev:     devFor(hook, m.InDev, m.OutDev),
		time:    kernelTime(m.HasTs, m.TsSec, m.TsUsec, r.now),
	}, m.Payload)
}

// accept sends one verdict accepting every packet read so far.
func (r *nfqueueReader) accept() {
	if !r.haveID {
		return
	}
	r.haveID = false
	r.sendVerdict(r.maxID)
}

// sendVerdict accepts every queued packet with an id up to id.
func (r *nfqueueReader) sendVerdict(id uint32) {
	nfnl.PutVerdictBatch(r.verdict[:], r.cs.ch.Num, id)
	var serr error
	err := r.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), r.verdict[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		r.cs.cnt.verdictErrs.Add(1)
		r.log.Debug("send nfqueue verdict", "queue", r.cs.ch.Num, "err", err)
	}
}

// recv reads up to nfqueueReadBatch datagrams with one recvmmsg, waiting in
// the runtime poller for the first.
func (r *nfqueueReader) recv() (int, error) {
	var (
		n    int
		rerr error
	)
	err := r.raw.Read(func(fd uintptr) bool {
		for {
			r0, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
				uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			n, rerr = int(r0), nil
			if errno != 0 {
				n, rerr = 0, errno
			}
			return errno != unix.EAGAIN
		}
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// Close accepts every packet still queued (read or not: the kernel drops
// what waits for a verdict when the queue is unbound), then closes the
// socket, which unbinds the queue. Call it after Run returned.
func (r *nfqueueReader) Close() error {
	// Ids after maxID, up to half the id space ahead, are accepted too.
	r.sendVerdict(r.maxID + 1<<31 - 1)
	return r.conn.Close()
}
