import CPKCS11
import MeterTrustCore

/// An error raised by the HSM layer.
///
/// Like swift-certificates' `CertificateError`, the code is opaque and growable; the message is for people and
/// never contains secret material (PINs, key values).
public struct HSMError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code in the closed set every edge maps.
        public let errorCode: ErrorCode
        public static let moduleLoad = Code(errorCode: .hsmModuleLoad)
        public static let tokenNotFound = Code(errorCode: .hsmTokenNotFound)
        public static let pinUnavailable = Code(errorCode: .hsmPINUnavailable)
        public static let pkcs11 = Code(errorCode: .hsmPKCS11)
        public static let keyNotFound = Code(errorCode: .hsmKeyNotFound)
        public static let invalidKeyMaterial = Code(errorCode: .hsmInvalidKeyMaterial)
        public static let configuration = Code(errorCode: .hsmConfiguration)
        public var description: String { errorCode.rawValue }
    }

    public let code: Code
    /// The PKCS#11 function that failed (for `.pkcs11`), e.g. `C_Sign`.
    public let operation: String?
    /// The CKR_ return value (for `.pkcs11`).
    public let returnValue: CK_RV?
    public let message: String

    public var description: String { message }

    /// The symbolic name of ``returnValue``, e.g. `CKR_PIN_INCORRECT`.
    public var returnValueName: String? { returnValue.map(PKCS11ReturnValue.name(of:)) }

    static func pkcs11(_ operation: String, _ rv: CK_RV, context: String? = nil) -> HSMError {
        let name = PKCS11ReturnValue.name(of: rv)
        var message = "PKCS#11 \(operation) failed with \(name) (0x\(String(rv, radix: 16)))"
        if let context { message += " while \(context)" }
        if let hint = PKCS11ReturnValue.hint(for: rv) { message += "; \(hint)" }
        return HSMError(code: .pkcs11, operation: operation, returnValue: rv, message: message)
    }

    static func make(_ code: Code, _ message: String) -> HSMError {
        HSMError(code: code, operation: nil, returnValue: nil, message: message)
    }
}

/// Symbolic names for CK_RV values (PKCS#11 v3.0 §5.1, "Return values").
public enum PKCS11ReturnValue {
    static let names: [CK_RV: String] = [
        0x0: "CKR_OK", 0x1: "CKR_CANCEL", 0x2: "CKR_HOST_MEMORY", 0x3: "CKR_SLOT_ID_INVALID",
        0x5: "CKR_GENERAL_ERROR", 0x6: "CKR_FUNCTION_FAILED", 0x7: "CKR_ARGUMENTS_BAD",
        0x1B: "CKR_ACTION_PROHIBITED", 0x10: "CKR_ATTRIBUTE_READ_ONLY", 0x11: "CKR_ATTRIBUTE_SENSITIVE", 0x12: "CKR_ATTRIBUTE_TYPE_INVALID",
        0x13: "CKR_ATTRIBUTE_VALUE_INVALID", 0x20: "CKR_DATA_INVALID", 0x21: "CKR_DATA_LEN_RANGE",
        0x30: "CKR_DEVICE_ERROR", 0x31: "CKR_DEVICE_MEMORY", 0x32: "CKR_DEVICE_REMOVED",
        0x50: "CKR_FUNCTION_CANCELED", 0x54: "CKR_FUNCTION_NOT_SUPPORTED", 0x60: "CKR_KEY_HANDLE_INVALID",
        0x62: "CKR_KEY_SIZE_RANGE", 0x63: "CKR_KEY_TYPE_INCONSISTENT", 0x68: "CKR_KEY_FUNCTION_NOT_PERMITTED",
        0x69: "CKR_KEY_NOT_WRAPPABLE", 0x6A: "CKR_KEY_UNEXTRACTABLE", 0x70: "CKR_MECHANISM_INVALID", 0x71: "CKR_MECHANISM_PARAM_INVALID",
        0x82: "CKR_OBJECT_HANDLE_INVALID", 0x90: "CKR_OPERATION_ACTIVE", 0x91: "CKR_OPERATION_NOT_INITIALIZED",
        0xA0: "CKR_PIN_INCORRECT", 0xA1: "CKR_PIN_INVALID", 0xA2: "CKR_PIN_LEN_RANGE", 0xA3: "CKR_PIN_EXPIRED",
        0xA4: "CKR_PIN_LOCKED", 0xB0: "CKR_SESSION_CLOSED", 0xB1: "CKR_SESSION_COUNT",
        0xB3: "CKR_SESSION_HANDLE_INVALID", 0xB5: "CKR_SESSION_READ_ONLY", 0xB6: "CKR_SESSION_EXISTS",
        0xB7: "CKR_SESSION_READ_ONLY_EXISTS", 0xB8: "CKR_SESSION_READ_WRITE_SO_EXISTS",
        0xC0: "CKR_SIGNATURE_INVALID", 0xC1: "CKR_SIGNATURE_LEN_RANGE", 0xD0: "CKR_TEMPLATE_INCOMPLETE",
        0xD1: "CKR_TEMPLATE_INCONSISTENT", 0xE0: "CKR_TOKEN_NOT_PRESENT", 0xE1: "CKR_TOKEN_NOT_RECOGNIZED",
        0xE2: "CKR_TOKEN_WRITE_PROTECTED", 0x100: "CKR_USER_ALREADY_LOGGED_IN", 0x101: "CKR_USER_NOT_LOGGED_IN",
        0x102: "CKR_USER_PIN_NOT_INITIALIZED", 0x104: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
        0x110: "CKR_WRAPPED_KEY_INVALID", 0x112: "CKR_WRAPPED_KEY_LEN_RANGE", 0x113: "CKR_WRAPPING_KEY_HANDLE_INVALID", 0x103: "CKR_USER_TYPE_INVALID", 0x150: "CKR_BUFFER_TOO_SMALL",
        0x190: "CKR_CRYPTOKI_NOT_INITIALIZED", 0x191: "CKR_CRYPTOKI_ALREADY_INITIALIZED",
        0x1B0: "CKR_FUNCTION_REJECTED",
    ]

    /// The CKR_ name of `rv`, or `CKR_0x…` for a vendor-defined or unknown value.
    public static func name(of rv: CK_RV) -> String {
        names[rv] ?? "CKR_0x\(String(rv, radix: 16))"
    }

    static func hint(for rv: CK_RV) -> String? {
        switch rv {
        case 0xA0: return "check the PIN in the configured environment variable or PIN file"
        case 0xA4: return "the user PIN is locked; the security officer must reset it"
        case 0xE0, 0x3: return "check that the token is present and the slot exists"
        case 0x60, 0x82: return "the key object no longer exists on the token"
        case 0x101: return "log in to the token first"
        case 0x104: return "another user type is logged in to this token in this process; ceremonies run in a process of their own"
        default: return nil
        }
    }
}

extension HSMError: CodedError {
    public var errorCode: ErrorCode { code.errorCode }
}
