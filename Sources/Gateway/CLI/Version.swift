import CGatewayShims

/// Build identity, shown by `gateway version` and the about object.
enum Version {
    static let number = "0.1.0"

    static var libraries: String {
        let openssl = String(cString: OpenSSL_version(Int32(OPENSSL_VERSION)))
        let h2 = nghttp2_version(0).map { String(cString: $0.pointee.version_str) } ?? "?"
        return "\(openssl), nghttp2 \(h2)"
    }

    static var line: String {
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "arm64"
        #else
        let arch = "unknown"
        #endif
        return "gateway \(number) (\(arch), \(libraries))"
    }
}
