// Stands in for Node's "crypto" module, which noble-secp256k1 imports but a browser does not have (its package.json
// says so: "browser": {"crypto": false}); the page's import map resolves "crypto" here. The page never uses it: it
// signs with signSync and an HMAC from noble-hashes, and takes random bytes from the browser's crypto.
export {};
