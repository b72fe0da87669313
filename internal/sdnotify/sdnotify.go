// Package sdnotify tells the service manager (systemd, Type=notify) how the
// daemon is doing: READY=1 once it serves, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 at shutdown. It is the sd_notify(3) protocol: one
// datagram of newline-separated assignments to the unix socket named by
// $NOTIFY_SOCKET. Without that variable it does nothing.
//
// It is a few lines on a unixgram socket rather than coreos/go-systemd: the
// protocol is small and stable, and the project keeps its dependencies few.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Socket is the environment variable that names the service manager's
// socket.
const Socket = "NOTIFY_SOCKET"

// Notify sends the assignments (e.g. "READY=1", "STATUS=mirroring") in one
// datagram. It returns nil, sending nothing, when $NOTIFY_SOCKET is not set.
func Notify(states ...string) error {
	path := os.Getenv(Socket)
	if path == "" || len(states) == 0 {
		return nil
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify service manager: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify service manager: %w", err)
	}
	return nil
}

// Reloading is the notification that a reload starts: RELOADING=1 with the
// monotonic time systemd's notify-reload services want.
func Reloading() []string {
	return []string{"RELOADING=1", "MONOTONIC_USEC=" + monotonicUsec()}
}

func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Sprint(time.Now().UnixMicro())
	}
	return fmt.Sprint(ts.Sec*1_000_000 + ts.Nsec/1000)
}
