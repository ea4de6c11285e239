// The options every flashtts ZeroMQ socket carries, the actors' and the
// clients' alike: LINGER=0, so that closing a socket or a context never
// waits for messages a peer will not take.
//
// Thread contract: a plain function; call it on a socket from the thread that owns it.
#pragma once

#include <zmq.hpp>

namespace flashtts {

inline void configure_socket(zmq::socket_t& s) { s.set(zmq::sockopt::linger, 0); }

}  // namespace flashtts
