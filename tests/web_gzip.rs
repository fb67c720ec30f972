//! gzip: compress_response, decompress_request, the client's decompress_response.
