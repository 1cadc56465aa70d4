// CMPI shim: Open MPI for Swift.
//
// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) are
// macros that take the address of global structs; Swift cannot import them ("structure not
// supported"). Each one is exposed here through a static inline accessor instead.
#ifndef DIST_TRAINER_CMPI_SHIM_H
#define DIST_TRAINER_CMPI_SHIM_H

#include <mpi.h>

static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype cmpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype cmpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Op cmpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_op_max(void) { return MPI_MAX; }
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Info cmpi_info_null(void) { return MPI_INFO_NULL; }
static inline int cmpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline int cmpi_success(void) { return MPI_SUCCESS; }
static inline int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int cmpi_mode_nocheck(void) { return MPI_MODE_NOCHECK; }

// The step's reduction of sums and maxima in one call: pairs of Doubles, the first summed, the second
// maximised (commutative and associative; NaNs must not be passed, their max depends on the order).
static inline void cmpi_sum_max_pairs(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const double *a = (const double *)in;
    double *b = (double *)inout;
    for (int i = 0; i < *len; i++) {
        b[2 * i] += a[2 * i];
        if (a[2 * i + 1] > b[2 * i + 1]) b[2 * i + 1] = a[2 * i + 1];
    }
}

/// Creates the pair datatype and the sum-and-max operation over it.
static inline int cmpi_make_sum_max(MPI_Datatype *pair, MPI_Op *op) {
    int rc = MPI_Type_contiguous(2, MPI_DOUBLE, pair);
    if (rc != MPI_SUCCESS) return rc;
    rc = MPI_Type_commit(pair);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Op_create(cmpi_sum_max_pairs, 1, op);
}

#endif
