// HTTPGet: fetching one file over plain HTTP/1.1 with POSIX sockets, so that the trainer needs no
// network library (no libcurl, no FoundationNetworking) on the nodes that only train.
//
// Enough for `dist-trainer download` against the official mirror or a local one: GET with
// `Connection: close`, bodies delimited by Content-Length, chunked encoding or the end of the
// connection, up to five redirects, a connect timeout and an idle timeout. Not here: TLS
// (https:// mirrors are refused with a hint), proxies, keep-alive, compression.
import CoreSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The body of a 200 response to `GET url`; one-line errors name the URL ("GET <url>: ...").
public func httpGet(_ url: URL, timeout: Double = 60) throws -> [UInt8] {
    var current = url
    for _ in 0...5 {
        let response = try HTTPExchange.get(current, timeout: timeout)
        if [301, 302, 303, 307, 308].contains(response.status), let location = response.headers["location"] {
            guard let next = URL(string: location, relativeTo: current)?.absoluteURL else {
                throw TrainerError("GET \(current.absoluteString): redirect to an invalid location '\(location)'")
            }
            current = next
            continue
        }
        guard response.status == 200 else {
            throw TrainerError("GET \(current.absoluteString): HTTP \(response.status) \(response.reason)")
        }
        return response.body
    }
    throw TrainerError("GET \(url.absoluteString): more than 5 redirects")
}

/// One request and its response on a fresh connection.
struct HTTPExchange {
    var status: Int
    var reason: String
    /// Header names lowercased.
    var headers: [String: String]
    var body: [UInt8]

    static func get(_ url: URL, timeout: Double) throws -> HTTPExchange {
        let where_ = "GET \(url.absoluteString)"
        guard url.scheme?.lowercased() == "http", let host = url.host, !host.isEmpty else {
            throw TrainerError("\(where_): only http:// URLs are supported (for https, fetch the files yourself into a directory and set FASHION_MNIST_DIR)")
        }
        let fd = try connect(host: host, port: url.port ?? 80, timeout: timeout, context: where_)
        defer { close(fd) }
        let path = (url.path.isEmpty ? "/" : url.path) + (url.query.map { "?" + $0 } ?? "")
        let hostHeader = url.port.map { "\(host):\($0)" } ?? host
        let request = "GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: dist-trainer\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
        try sendAll(fd, Array(request.utf8), context: where_)
        return try parse(receiveAll(fd, context: where_), context: where_)
    }

    /// A connected TCP socket to `host:port` (every address getaddrinfo gives, in order).
    static func connect(host: String, port: Int, timeout: Double, context: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw TrainerError("\(context): cannot resolve the host name")
        }
        defer { freeaddrinfo(list) }
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let a = candidate {
            candidate = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
            close(fd)
        }
        throw TrainerError("\(context): cannot connect (connection refused or host unreachable)")
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8], context: String) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TrainerError("\(context): sending the request failed: \(systemReason())") }
            sent += n
        }
    }

    /// Everything the server sends until it closes the connection.
    static func receiveAll(_ fd: Int32, context: String) throws -> [UInt8] {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { return data }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : "connection lost during the transfer (\(systemReason()))"
                throw TrainerError("\(context): \(reason)")
            }
            data += chunk[0..<n]
        }
    }

    /// Status line, headers and body (Content-Length, chunked, or to the end of the connection).
    static func parse(_ data: [UInt8], context: String) throws -> HTTPExchange {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = data.firstRange(of: separator) else { throw TrainerError("\(context): bad server response (no complete header)") }
        let lines = String(decoding: data[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2).map(String.init)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw TrainerError("\(context): bad server response (status line '\(lines[0].prefix(60))')")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(data[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try dechunk(body, context: context)
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard body.count >= length else {
                throw TrainerError("\(context): connection lost during the transfer (\(body.count) of \(length) bytes)")
            }
            body.removeSubrange(length...)
        }
        return HTTPExchange(status: status, reason: statusParts.count > 2 ? statusParts[2] : "", headers: headers, body: body)
    }

    /// The payload of a chunked body.
    static func dechunk(_ data: [UInt8], context: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = data[i...].firstRange(of: [13, 10]) else { throw TrainerError("\(context): truncated chunked body") }
            let sizeText = String(decoding: data[i..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw TrainerError("\(context): bad chunk size '\(sizeText.prefix(20))'")
            }
            i = lineEnd.upperBound
            if size == 0 { return out }
            guard data.count >= i + size + 2 else { throw TrainerError("\(context): truncated chunked body") }
            out += data[i..<(i + size)]
            i += size + 2
        }
    }
}
