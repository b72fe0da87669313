// Package control is the local control socket of a running nfmirror: a unix
// socket on which the daemon answers status requests with one JSON document,
// and the client that `nfmirror status` uses to read it.
//
// Nothing a client does can hold the daemon: each connection gets one
// document and a deadline, at most maxClients are served at once (the rest
// wait in the listen backlog), and the document comes from a function that
// must not block for long.
package control
