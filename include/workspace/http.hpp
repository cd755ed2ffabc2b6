// The HTTP/1.1 client layer: transports, the client, policies and streamed bodies.
#pragma once

#include <workspace/http/body.hpp>
#include <workspace/http/client.hpp>
#include <workspace/http/error.hpp>
#include <workspace/http/message.hpp>
#include <workspace/http/options.hpp>
#include <workspace/http/policies.hpp>
#include <workspace/http/any_transport.hpp>
#include <workspace/http/tls.hpp>
#include <workspace/http/transport.hpp>
#include <workspace/http/url.hpp>
#include <workspace/http/websocket.hpp>
