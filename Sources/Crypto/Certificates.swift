import COpenSSL

/// Checks what a server sent as a root certificate (spec §5, `<Certs>`) before the phone trusts and saves it.
public enum CertificatePEM {
    /// Why a body is not usable as root certificates.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// The number of X.509 certificates in `pem`, every one parsed by libcrypto; text around them is allowed.
    ///
    /// - Throws: `Problem` when there is none, or when one is cut short or damaged (a truncated download must not
    ///   replace a good saved certificate).
    public static func count(_ pem: [UInt8]) throws(Problem) -> Int {
        let markers = occurrences(of: Array("-----BEGIN CERTIFICATE-----".utf8), in: pem)
        guard markers > 0 else {
            throw Problem(description: "not a PEM certificate (expected -----BEGIN CERTIFICATE-----)")
        }
        ERR_clear_error()
        let parsed: Int? = pem.withUnsafeBytes { raw -> Int? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            var n = 0
            while let cert = PEM_read_bio_X509(bio, nil, nil, nil) {
                X509_free(cert)
                n += 1
            }
            return n
        }
        ERR_clear_error()
        guard let parsed else { throw Problem(description: "cannot read the certificate: libcrypto is out of memory") }
        guard parsed == markers else {
            throw Problem(
                description: "certificate \(parsed + 1) of \(markers) is damaged or cut short (not valid PEM/X.509)"
            )
        }
        return parsed
    }

    private static func occurrences(of needle: [UInt8], in haystack: [UInt8]) -> Int {
        guard haystack.count >= needle.count else { return 0 }
        var n = 0
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0], haystack[i..<(i + needle.count)].elementsEqual(needle) {
                n += 1
                i += needle.count
            } else {
                i += 1
            }
        }
        return n
    }
}
