import CGatewayShims

/// An RSA or EC public key for verifying tokens of external identity providers (verify only:
/// the gateway never signs with one). Immutable and safe to share between threads: libcrypto
/// only reads an EVP_PKEY during verification.
public final class PublicKey: @unchecked Sendable {
    let pkey: OpaquePointer
    public let bits: Int

    public enum Kind: Sendable { case rsa, ec }
    public let kind: Kind

    private init?(_ pkey: OpaquePointer?) {
        guard let pkey else { return nil }
        self.pkey = pkey
        self.bits = Int(gw_pkey_bits(pkey))
        switch gw_pkey_type(pkey) {
        case EVP_PKEY_RSA: kind = .rsa
        case EVP_PKEY_EC: kind = .ec
        default:
            gw_pkey_free(pkey)
            return nil
        }
    }

    deinit { gw_pkey_free(pkey) }

    /// From a JWK's `n` and `e` (big-endian bytes).
    public convenience init?(rsaModulus n: [UInt8], exponent e: [UInt8]) {
        self.init(n.withUnsafeBufferPointer { nb in
            e.withUnsafeBufferPointer { eb in gw_pkey_rsa_new(nb.baseAddress, nb.count, eb.baseAddress, eb.count) }
        })
    }

    /// From a JWK's `crv` ("P-256" or "P-384"), `x` and `y`.
    public convenience init?(curve: String, x: [UInt8], y: [UInt8]) {
        self.init(curve.withCString { crv in
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeBufferPointer { yb in gw_pkey_ec_new(crv, xb.baseAddress, xb.count, yb.baseAddress, yb.count) }
            }
        })
    }

    /// From a PEM "PUBLIC KEY" block.
    public convenience init?(pem: String) {
        var text = pem
        self.init(text.withUTF8 { gw_pkey_from_pem(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) })
    }

    /// Verifies a JWS signature made with `algorithm` over `data`.
    func verify(_ algorithm: JWSAlgorithm, data: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) -> Bool {
        let sig = signature.baseAddress?.assumingMemoryBound(to: UInt8.self)
        return algorithm.digestName.withUTF8Buffer { nameBuf in
            let name = UnsafeRawPointer(nameBuf.baseAddress!).assumingMemoryBound(to: CChar.self)
            switch algorithm {
            case .rs256, .rs384, .rs512:
                return kind == .rsa && gw_verify_rsa_pkcs1(pkey, name, data.baseAddress, data.count, sig, signature.count) == 1
            case .es256, .es384:
                return kind == .ec && gw_verify_ecdsa_raw(pkey, name, data.baseAddress, data.count, sig, signature.count) == 1
            default:
                return false
            }
        }
    }
}
