package mirror

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nfmirror/nfmirror/internal/nfnl"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// nflogReader is nfmirror's own NFLOG group reader: a NETLINK_NETFILTER
// socket configured with NFULNL_MSG_CONFIG messages through mdlayher/netlink,
// then read with one recvmsg per datagram into a buffer it reuses, decoded in
// place (nflog_msg.go). It serves netdev channels, which go-nflog v2.3.0 drops,
// and inet channels when Config.InetReader is ReaderBuiltin.
type nflogReader struct {
	cs   *chanState
	conn *netlink.Conn
	raw  syscall.RawConn
	log  *slog.Logger
	buf  []byte
	msg  nfnl.NFLOGMsg
	seq  seqTracker
	vlan [4]byte
	now  time.Time // when the datagram being decoded was read
}

// NFLOG tuning shared by both readers.
const (
	// nflogQThresh is how many copies the kernel batches into one datagram;
	// nflogTimeout (in 1/100 s) flushes a batch that does not fill, so a
	// lone packet waits at most 10 ms. Each datagram wakes the reader, so
	// larger batches cost the reader and the forwarding path less (the
	// measurements are in the commit that chose 256 and in
	// bench/RESULTS.md). The kernel also flushes a batch that fills its
	// buffer.
	nflogQThresh = 256
	nflogTimeout = 1
	// nflogNlBufSiz is the kernel's batch buffer (it caps it at 128 KiB and
	// grows it for a copy that does not fit).
	nflogNlBufSiz = 128 << 10
	// nflogReadBuf is the receive buffer of the socket: bursts up to this
	// size survive a reader that is briefly descheduled.
	nflogReadBuf = 16 << 20
	// nflogDatagramBuf holds the largest datagram: a batch buffer, or one
	// 64 KiB copy with its headers.
	nflogDatagramBuf = 256 << 10
)

// openNFLOGReader binds the channel's group in the namespace netns (0 = the
// current one) and configures copy mode, snaplen, batching and sequence
// numbers.
func openNFLOGReader(cs *chanState, netns int, log *slog.Logger) (*nflogReader, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	r := &nflogReader{cs: cs, conn: conn, log: log, buf: make([]byte, nflogDatagramBuf)}
	if err := r.configure(); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

func (r *nflogReader) configure() error {
	g := r.cs.ch.Num
	raw, err := r.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	r.raw = raw
	setReadBuffer(r.conn, raw, nflogReadBuf, r.log)

	// The whole packet: each rule's own "log snaplen" cuts its copies.
	snap := uint32(0xffff)
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode[0:4], snap)
	mode[4] = nfnl.NfulnlCopyPacket
	steps := []struct {
		what  string
		attrs []netlink.Attribute
	}{
		{"bind", []netlink.Attribute{{Type: nfnl.NfulaCfgCmd, Data: []byte{nfnl.NfulnlCfgCmdBind}}}},
		{"set copy mode", []netlink.Attribute{{Type: nfnl.NfulaCfgMode, Data: mode}}},
		{"set batching", []netlink.Attribute{
			{Type: nfnl.NfulaCfgNlBufSiz, Data: be32(nflogNlBufSiz)},
			{Type: nfnl.NfulaCfgQThresh, Data: be32(nflogQThresh)},
			{Type: nfnl.NfulaCfgTimeout, Data: be32(nflogTimeout)},
			{Type: nfnl.NfulaCfgFlags, Data: binary.BigEndian.AppendUint16(nil, nfnl.NfulnlCfgFSeq)},
		}},
	}
	for _, s := range steps {
		if err := nflogConfig(r.conn, g, s.attrs); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// nflogConfig sends one NFULNL_MSG_CONFIG request for group and waits for
// its acknowledgement.
func nflogConfig(c *netlink.Conn, group uint16, attrs []netlink.Attribute) error {
	return nfnlConfig(c, nfnl.NfnlSubsysULOG<<8|nfnl.NfulnlMsgConfig, group, attrs)
}

// nfnlConfig sends one nfnetlink configuration request of type typ for the
// group or queue res and waits for its acknowledgement.
func nfnlConfig(c *netlink.Conn, typ, res uint16, attrs []netlink.Attribute) error {
	ab, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return fmt.Errorf("marshal attributes: %w", err)
	}
	data := make([]byte, 4, 4+len(ab))
	data[0] = unix.AF_UNSPEC
	data[1] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(data[2:4], res)
	data = append(data, ab...)
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(typ),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: data,
	})
	return err
}

// setReadBuffer raises the socket's receive buffer to n bytes, past
// net.core.rmem_max when allowed (SO_RCVBUFFORCE needs CAP_NET_ADMIN).
func setReadBuffer(c *netlink.Conn, raw syscall.RawConn, n int, log *slog.Logger) {
	var serr error
	err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	})
	if err == nil && serr == nil {
		return
	}
	if err := c.SetReadBuffer(n); err != nil {
		log.Warn("set netlink receive buffer", "bytes", n, "err", err)
	}
}

// Run reads datagrams until ctx is cancelled.
func (r *nflogReader) Run(ctx context.Context) error {
	if err := readNetlink(ctx, r.conn, &r.cs.cnt.enobufs, r.recv, r.datagram); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// datagram decodes the n-byte datagram recv read.
func (r *nflogReader) datagram(n int) {
	if n > len(r.buf) {
		r.cs.cnt.parseErrors.Add(1)
		return
	}
	// Copies the kernel does not stamp (output, postrouting) are stamped
	// once per datagram: at most the batch timeout (10 ms) late.
	r.now = time.Now()
	if err := nfnl.ParseNFLOGDatagram(r.buf[:n], &r.msg, r.handle); err != nil {
		r.cs.cnt.parseErrors.Add(1)
		r.log.Debug("decode nflog datagram", "group", r.cs.ch.Num, "err", err)
	}
}

// readNetlink calls recv until ctx is cancelled, and handle with each
// result. ENOBUFS (the kernel dropped messages: NFLOG's sequence gaps count
// them, NFQUEUE failed open) is counted in enobufs and read past, and so are
// timeouts and EINTR; any other error ends it. ctx's cancellation unblocks
// recv through a read deadline on conn.
func readNetlink(ctx context.Context, conn *netlink.Conn, enobufs *atomic.Uint64, recv func() (int, error), handle func(n int)) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		n, err := recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				enobufs.Add(1)
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		handle(n)
	}
}

// recv reads one datagram into r.buf with a single recvmsg, waiting in the
// runtime poller. It returns the datagram's full length (MSG_TRUNC), which
// exceeds len(r.buf) when the datagram was cut.
func (r *nflogReader) recv() (int, error) {
	var (
		n    int
		rerr error
	)
	err := r.raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), r.buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// handle turns one decoded message into a packet for the queue.
func (r *nflogReader) handle(m *nfnl.NFLOGMsg) {
	if m.HasSeq {
		if gap := r.seq.next(m.Seq); gap > 0 {
			r.cs.cnt.seqGaps.Add(gap)
		}
	}
	hook := hookFromKernel(m.Family, m.Hook)
	meta := copyMeta{
		ruleID: ruleIDFromPrefix(m.Prefix),
		hook:   hook,
		dev:    devFor(hook, m.InDev, m.OutDev),
		time:   kernelTime(m.HasTs, m.TsSec, m.TsUsec, r.now),
	}
	if m.Family != nfnl.NfprotoNetdev {
		meta.origLen = pkt.OrigLen(m.Payload)
		r.cs.deliver(meta, m.Payload)
		return
	}
	// An L2 frame: at ingress the payload starts at the network header and
	// the MAC header comes separately; at egress the payload starts at the
	// MAC header. A VLAN tag offloaded into skb metadata goes back after the
	// MAC addresses, where the wire carries it.
	meta.l2 = true
	var mac, body []byte
	if m.Hook == nfnl.NfNetdevEgress {
		mac, body = nil, m.Payload
	} else {
		mac = m.L2Hdr
		if mac == nil {
			mac = m.HwHeader
		}
		body = m.Payload
	}
	var tag []byte
	if m.HasVLAN {
		binary.BigEndian.PutUint16(r.vlan[0:2], m.VLANProto)
		binary.BigEndian.PutUint16(r.vlan[2:4], m.VLANTCI)
		tag = r.vlan[:]
	}
	if mac != nil {
		if o := pkt.OrigLen(body); o > 0 {
			meta.origLen = o + len(mac) + len(tag)
		}
	} else if len(body) >= 14 {
		if o := pkt.OrigLen(body[14:]); o > 0 {
			meta.origLen = o + 14 + len(tag)
		}
	}
	switch {
	case tag == nil:
		r.cs.deliver(meta, mac, body)
	case len(mac) >= 12:
		r.cs.deliver(meta, mac[:12], tag, mac[12:], body)
	case mac == nil && len(body) >= 12:
		r.cs.deliver(meta, body[:12], tag, body[12:])
	default:
		r.cs.deliver(meta, mac, body)
	}
}

// Close closes the socket, which also unbinds the group.
func (r *nflogReader) Close() error { return r.conn.Close() }
