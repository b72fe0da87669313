// Package route sets up and undoes the policy routing that carries mirrored
// IP copies out of the mirror interface: an ip rule "fwmark M lookup T" for
// IPv4 and IPv6, a default route in table T through the mirror interface, and
// the mirror interface itself brought up with ARP and neighbour discovery off
// so that no neighbour is ever resolved. Everything it applies is declared as
// data and undone exactly.
package route
