// gateway/asio_impl.cpp — the one translation unit that compiles Asio's implementation
// (BOOST_ASIO_SEPARATE_COMPILATION): every other file compiles against declarations only.
#include <boost/asio/impl/src.hpp>
// Asio's TLS layer (OpenSSL), compiled once too.
#include <boost/asio/ssl/impl/src.hpp>
