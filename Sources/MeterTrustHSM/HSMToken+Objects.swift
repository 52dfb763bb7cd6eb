import CPKCS11

/// Object primitives the other concerns are built on: find, copy, create and destroy objects, read and set attributes.
extension HSMToken {
    func findObjects(_ template: [PKCS11Attribute]) throws -> [CK_OBJECT_HANDLE] {
        try pool.withSession { session in try module.findObjects(in: session, matching: template) }
    }

    /// Every object of class `objectClass` this login sees.
    func objects(ofClass objectClass: CK_ULONG) throws -> [CK_OBJECT_HANDLE] {
        try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), objectClass)])
    }

    /// C_CopyObject inside the token with `template`.
    @discardableResult
    func copyObject(_ handle: CK_OBJECT_HANDLE, _ template: [PKCS11Attribute], context: String) throws -> CK_OBJECT_HANDLE {
        var copy: CK_OBJECT_HANDLE = 0
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_CopyObject", context: context) { $0.C_CopyObject(session, handle, attributes, count, &copy) }
            }
        }
        return copy
    }

    func setAttributes(_ handle: CK_OBJECT_HANDLE, _ template: [PKCS11Attribute], context: String) throws {
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_SetAttributeValue", context: context) { $0.C_SetAttributeValue(session, handle, attributes, count) }
            }
        }
    }

    func createObject(_ template: [PKCS11Attribute], context: String) throws {
        var handle: CK_OBJECT_HANDLE = 0
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_CreateObject", context: context) { $0.C_CreateObject(session, attributes, count, &handle) }
            }
        }
    }

    func destroyObject(_ handle: CK_OBJECT_HANDLE, context: String) throws {
        try pool.withSession { session in
            try module.check("C_DestroyObject", context: context) { $0.C_DestroyObject(session, handle) }
        }
    }

    /// Reads one attribute of an object; fails with the token's CKR_ for sensitive or unextractable values.
    func attribute(_ type: CK_ATTRIBUTE_TYPE, of object: CK_OBJECT_HANDLE) throws -> [UInt8] {
        try pool.withSession { session in
            var probe = CK_ATTRIBUTE(type: type, pValue: nil, ulValueLen: 0)
            try module.check("C_GetAttributeValue", context: "reading attribute 0x\(String(type, radix: 16))") {
                $0.C_GetAttributeValue(session, object, &probe, 1)
            }
            var value = [UInt8](repeating: 0, count: Int(probe.ulValueLen))
            try value.withUnsafeMutableBytes { buffer in
                var attribute = CK_ATTRIBUTE(type: type, pValue: buffer.baseAddress, ulValueLen: CK_ULONG(buffer.count))
                try module.check("C_GetAttributeValue", context: "reading attribute 0x\(String(type, radix: 16))") {
                    $0.C_GetAttributeValue(session, object, &attribute, 1)
                }
            }
            return value
        }
    }
}
