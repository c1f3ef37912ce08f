// Force-included (-include) into every C++ file of the mediasoup worker by the libsrtp2 stub
// subproject (subprojects/libsrtp2/meson.build). mediasoup 3.15.8 is written against
// versatica's libsrtp 3.0-alpha; Debian bookworm ships libsrtp2 2.5. Three differences matter:
//   - lengths: 3.x takes `size_t*`, 2.x takes `int*` (same in-place protection otherwise);
//   - 3.x renamed srtp_remove_stream() to srtp_stream_remove();
//   - 2.5 returns codes past srtp_err_status_pfkey_err (24), the last one mediasoup's
//     DepLibSRTP::GetErrorString() knows: it would throw std::out_of_range from a log line.
// Overloads with C++ linkage beside libsrtp's C functions; no mediasoup source is edited.
#ifndef HOT_STANDBY_MCU_LIBSRTP2_COMPAT_H
#define HOT_STANDBY_MCU_LIBSRTP2_COMPAT_H

#ifdef __cplusplus

#include <climits>
#include <cstddef>
#include <cstdint>
#include <srtp2/srtp.h>

namespace hot_standby_mcu_srtp_compat
{
	// A length through an `int` and back, refusing what an int cannot hold.
	template<typename Call>
	inline srtp_err_status_t WithIntLength(size_t* len, Call call)
	{
		if (len == nullptr || *len > static_cast<size_t>(INT_MAX))
		{
			return srtp_err_status_bad_param;
		}

		int intLen = static_cast<int>(*len);
		srtp_err_status_t status = call(&intLen);

		if (status == srtp_err_status_ok)
		{
			*len = static_cast<size_t>(intLen);
		}
		else if (status > srtp_err_status_pfkey_err)
		{
			// bad_mki, pkt_idx_old, pkt_idx_adv: a failed packet all the same.
			status = srtp_err_status_fail;
		}

		return status;
	}
} // namespace hot_standby_mcu_srtp_compat

inline srtp_err_status_t srtp_protect(srtp_t ctx, void* rtp, size_t* len)
{
	return hot_standby_mcu_srtp_compat::WithIntLength(
	  len, [&](int* intLen) { return srtp_protect(ctx, rtp, intLen); });
}

inline srtp_err_status_t srtp_unprotect(srtp_t ctx, void* srtp, size_t* len)
{
	return hot_standby_mcu_srtp_compat::WithIntLength(
	  len, [&](int* intLen) { return srtp_unprotect(ctx, srtp, intLen); });
}

inline srtp_err_status_t srtp_protect_rtcp(srtp_t ctx, void* rtcp, size_t* len)
{
	return hot_standby_mcu_srtp_compat::WithIntLength(
	  len, [&](int* intLen) { return srtp_protect_rtcp(ctx, rtcp, intLen); });
}

inline srtp_err_status_t srtp_unprotect_rtcp(srtp_t ctx, void* srtcp, size_t* len)
{
	return hot_standby_mcu_srtp_compat::WithIntLength(
	  len, [&](int* intLen) { return srtp_unprotect_rtcp(ctx, srtcp, intLen); });
}

inline srtp_err_status_t srtp_stream_remove(srtp_t session, uint32_t ssrc)
{
	return srtp_remove_stream(session, ssrc);
}

#endif // __cplusplus

#endif // HOT_STANDBY_MCU_LIBSRTP2_COMPAT_H
