// gateway/asio_impl.cpp — the one translation unit that compiles Asio's and Beast's implementation
// (BOOST_ASIO_SEPARATE_COMPILATION, BOOST_BEAST_SEPARATE_COMPILATION): every other file compiles
// against declarations only.
#include <boost/asio/impl/src.hpp>
// Asio's TLS layer (OpenSSL), compiled once too.
#include <boost/asio/ssl/impl/src.hpp>
// Beast's (HTTP parser, WebSocket framing, SHA-1 and base64 of the handshake), compiled once too.
#include <boost/beast/src.hpp>
