package main

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr from <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// generate sends UDP datagrams of cfg.Size-byte frames to cfg.Dst, paced by
// the clock: after t seconds it has offered t*Rate packets, whatever the
// receiver does (open loop). Sends go out in sendmmsg batches of at most
// cfg.Batch; a sender that falls behind catches up in full batches.
func generate(ctx context.Context, cfg genConfig) (genResult, error) {
	res := genResult{Target: cfg.Rate}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return res, fmt.Errorf("open udp socket: %w", err)
	}
	defer unix.Close(fd)
	// FORCE ignores wmem_max (root); fall back to the capped option.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, cfg.SndBuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.SndBuf); err != nil {
			return res, fmt.Errorf("set send buffer %d: %w", cfg.SndBuf, err)
		}
	}
	sa := &unix.SockaddrInet4{Port: int(cfg.Dst.Port()), Addr: cfg.Dst.Addr().As4()}
	if err := unix.Connect(fd, sa); err != nil {
		return res, fmt.Errorf("connect %s: %w", cfg.Dst, err)
	}

	payload := make([]byte, cfg.Size-frameOverhead)
	for i := range payload {
		payload[i] = byte(i)
	}
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(len(payload))
	msgs := make([]mmsghdr, cfg.Batch)
	for i := range msgs {
		msgs[i].hdr.Iov = &iov
		msgs[i].hdr.SetIovlen(1)
	}

	start := time.Now()
	end := start.Add(cfg.Duration)
	last := start
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		target := due(now.Sub(start), cfg.Rate, cfg.Max)
		done := res.Sent + res.Errors
		if done >= cfg.Max {
			break
		}
		if target <= done {
			// Ahead of the clock: wait about until the next packet is due,
			// at most 200µs so a late wake-up costs a small burst only.
			wait := time.Duration(float64(time.Second) / cfg.Rate)
			time.Sleep(min(wait, 200*time.Microsecond))
			continue
		}
		n := int(min(target-done, uint64(cfg.Batch)))
		k, err := sendmmsg(fd, msgs[:n])
		last = time.Now()
		switch {
		case err == nil:
			res.Sent += uint64(k)
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.EPERM):
			// The first datagram of the batch was refused: count it as
			// offered and lost, and go on (open loop).
			res.Errors++
		default:
			return res, fmt.Errorf("sendmmsg to %s: %w", cfg.Dst, err)
		}
	}
	res.Seconds = last.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.PPS = float64(res.Sent) / res.Seconds
	}
	return res, nil
}

// sendmmsg sends msgs and returns how many the kernel took.
func sendmmsg(fd int, msgs []mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
