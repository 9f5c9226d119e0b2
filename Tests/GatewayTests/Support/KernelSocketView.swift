import Foundation
import Glibc

/// What the kernel knows of loopback TCP sockets (`/proc/net/tcp`): lets a test wait for the
/// gateway to have read a request, a condition no answer shows.
enum KernelSocketView {
    /// The local port of a connected socket.
    static func localPort(of fd: Int32) -> UInt16 {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: addr.sin_port)
    }

    /// Bytes received but not yet read by the process that owns the socket at `localPort`
    /// connected to `remotePort` (IPv4 loopback); nil when there is no such socket.
    static func unreadBytes(localPort: UInt16, remotePort: UInt16) -> Int? {
        guard let table = readWhole("/proc/net/tcp") else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st tx_queue:rx_queue ...
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 4, port(f[1]) == localPort, port(f[2]) == remotePort else { continue }
            let queues = f[4].split(separator: ":")
            guard queues.count == 2 else { return nil }
            return Int(queues[1], radix: 16)
        }
        return nil
    }

    /// Established connections to `remotePort` on loopback (IPv4): e.g. requests the gateway
    /// has carried to an upstream and not yet finished.
    static func establishedConnections(toPort remotePort: UInt16) -> Int {
        guard let table = readWhole("/proc/net/tcp") else { return 0 }
        return table.split(separator: "\n").dropFirst().filter { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return f.count > 4 && port(f[2]) == remotePort && f[3] == "01"
        }.count
    }

    /// A procfs file read to its end (its size says 0, so Foundation's readers stop early).
    private static func readWhole(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func port(_ address: Substring) -> UInt16? {
        address.split(separator: ":").last.flatMap { UInt16($0, radix: 16) }
    }
}
