/// The envelope profile's failure bodies, `{"code":<non-zero>,"error":"<word>","desc":"<text>"}`,
/// with a stable code table (README, "Envelope login API").
enum EnvelopeError: Int, CaseIterable {
    case invalidRequest = 1001, invalidCredentials = 1002, invalidToken = 1003, tokenReused = 1004
    case tooManyAttempts = 1005, notAcceptable = 1006, notFound = 1007, payloadTooLarge = 1008
    case badGateway = 1009, gatewayTimeout = 1010, methodNotAllowed = 1011, internalError = 1099

    var word: String {
        switch self {
        case .invalidRequest: return "invalid_request"
        case .invalidCredentials: return "invalid_credentials"
        case .invalidToken: return "invalid_token"
        case .tokenReused: return "token_reused"
        case .tooManyAttempts: return "too_many_attempts"
        case .notAcceptable: return "not_acceptable"
        case .notFound: return "not_found"
        case .payloadTooLarge: return "payload_too_large"
        case .badGateway: return "bad_gateway"
        case .gatewayTimeout: return "gateway_timeout"
        case .methodNotAllowed: return "method_not_allowed"
        case .internalError: return "internal_error"
        }
    }

    var status: (Int, String) {
        switch self {
        case .invalidRequest: return (400, "Bad Request")
        case .invalidCredentials, .invalidToken, .tokenReused: return (401, "Unauthorized")
        case .tooManyAttempts: return (429, "Too Many Requests")
        case .notAcceptable: return (406, "Not Acceptable")
        case .notFound: return (404, "Not Found")
        case .payloadTooLarge: return (413, "Payload Too Large")
        case .badGateway: return (502, "Bad Gateway")
        case .gatewayTimeout: return (504, "Gateway Timeout")
        case .methodNotAllowed: return (405, "Method Not Allowed")
        case .internalError: return (500, "Internal Server Error")
        }
    }

    var desc: String {
        switch self {
        case .invalidRequest: return "The request is malformed or misses a field"
        case .invalidCredentials: return "Invalid user or password"
        case .invalidToken: return "Missing or invalid token"
        case .tokenReused: return "This refresh token was already used; the login's tokens are revoked"
        case .tooManyAttempts: return "Too many failed attempts; retry later"
        case .notAcceptable: return "Only application/json can be answered"
        case .notFound: return "No route for this path"
        case .payloadTooLarge: return "Request body too large"
        case .badGateway: return "Upstream unavailable or its answer was invalid"
        case .gatewayTimeout: return "Upstream did not answer in time"
        case .methodNotAllowed: return "Method not allowed"
        case .internalError: return "Internal error"
        }
    }

    /// The envelope form of an error the gateway answers on a route with `errors = "envelope"`.
    init(_ response: GatewayResponse) {
        switch response {
        case .badRequest, .lengthRequired, .uriTooLong, .headersTooLarge, .versionNotSupported, .notImplemented: self = .invalidRequest
        case .unauthorized: self = .invalidToken
        case .forbidden: self = .invalidToken
        case .notFound: self = .notFound
        case .methodNotAllowed: self = .methodNotAllowed
        case .payloadTooLarge: self = .payloadTooLarge
        case .tooManyRequests: self = .tooManyAttempts
        case .badGateway, .serviceUnavailable: self = .badGateway
        case .gatewayTimeout: self = .gatewayTimeout
        case .internalError: self = .internalError
        }
    }
}
