// Package sdnotify tells the service manager (systemd, Type=notify) how the
// daemon is doing: READY=1 once it serves, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 at shutdown. It is the sd_notify(3) protocol: one
// datagram of newline-separated assignments to the unix socket named by
// $NOTIFY_SOCKET. Without that variable it does nothing.
//
// It is a few lines on a unixgram socket rather than coreos/go-systemd: the
// protocol is small and stable, and the project keeps its dependencies few.
package sdnotify
