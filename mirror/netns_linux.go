package mirror

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetNS runs f on a locked OS thread switched into the namespace fd, and
// switches back before unlocking. fd 0 runs f in place.
func inNetNS(fd int, f func() error) error {
	if fd == 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(fd)); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine
			// rather than serving others in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("return to netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netlinkHandle opens a netlink handle in the namespace fd (0: current).
func netlinkHandle(fd int) (*netlink.Handle, error) {
	var h *netlink.Handle
	var err error
	if fd == 0 {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	return h, nil
}

// htons converts a 16-bit value to network byte order for sockaddr_ll.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

func discardIfNil(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}
