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
