/// The errors the gateway answers itself, with their status, status text and default detail;
/// `ResponseWriter` turns them into DESIGN.md section 1's bodies,
/// `{"code":N,"message":"<status text>","details":["<what went wrong>"]}`.
enum GatewayResponse: Int, CaseIterable {
    case badRequest, unauthorized, forbidden, notFound, methodNotAllowed, payloadTooLarge, uriTooLong, tooManyRequests
    case headersTooLarge, internalError, notImplemented, badGateway, serviceUnavailable, gatewayTimeout
    case versionNotSupported, lengthRequired

    var status: Int {
        switch self {
        case .badRequest: return 400
        case .unauthorized: return 401
        case .forbidden: return 403
        case .notFound: return 404
        case .methodNotAllowed: return 405
        case .lengthRequired: return 411
        case .payloadTooLarge: return 413
        case .uriTooLong: return 414
        case .tooManyRequests: return 429
        case .headersTooLarge: return 431
        case .internalError: return 500
        case .notImplemented: return 501
        case .badGateway: return 502
        case .serviceUnavailable: return 503
        case .gatewayTimeout: return 504
        case .versionNotSupported: return 505
        }
    }

    var reason: String {
        switch self {
        case .badRequest: return "Bad Request"
        case .unauthorized: return "Unauthorized"
        case .forbidden: return "Forbidden"
        case .notFound: return "Not Found"
        case .methodNotAllowed: return "Method Not Allowed"
        case .lengthRequired: return "Length Required"
        case .payloadTooLarge: return "Payload Too Large"
        case .uriTooLong: return "URI Too Long"
        case .tooManyRequests: return "Too Many Requests"
        case .headersTooLarge: return "Request Header Fields Too Large"
        case .internalError: return "Internal Server Error"
        case .notImplemented: return "Not Implemented"
        case .badGateway: return "Bad Gateway"
        case .serviceUnavailable: return "Service Unavailable"
        case .gatewayTimeout: return "Gateway Timeout"
        case .versionNotSupported: return "HTTP Version Not Supported"
        }
    }

    /// The default `details` text.
    var detail: String {
        switch self {
        case .badRequest: return "Malformed request"
        case .unauthorized: return "Missing or invalid JWT token"
        case .forbidden: return "Forbidden"
        case .notFound: return "No route for this path"
        case .methodNotAllowed: return "Method not allowed"
        case .lengthRequired: return "Length required"
        case .payloadTooLarge: return "Request body too large"
        case .uriTooLong: return "Request line too long"
        case .tooManyRequests: return "Too many failed logins; retry later"
        case .headersTooLarge: return "Request header section too large"
        case .internalError: return "Internal error"
        case .notImplemented: return "Transfer-Encoding not supported"
        case .badGateway: return "Upstream unavailable or its answer was invalid"
        case .serviceUnavailable: return "Not ready"
        case .gatewayTimeout: return "Upstream did not answer in time"
        case .versionNotSupported: return "HTTP version not supported"
        }
    }
}

extension GatewayResponse {
    /// The answer to a request head the parser refused.
    init(parseError e: HTTPParseError) {
        switch e {
        case .uriTooLong: self = .uriTooLong
        case .headersTooLarge: self = .headersTooLarge
        case .versionNotSupported: self = .versionNotSupported
        case .notImplemented: self = .notImplemented
        case .badRequest: self = .badRequest
        }
    }
}
