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

/// An integer control variable of the MPI implementation, as its tool interface (MPI_T) reads it
/// now (after MPI_Init: a transport's parameters exist once it is opened), into `value`. Returns 0,
/// or -1 when there is no such variable or it is not an integer.
static inline int cmpi_control_variable(const char *name, long long *value) {
    int provided = 0, index = 0, count = 0, rc = -1;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return -1;
    MPI_Datatype type;
    MPI_T_enum enumtype;
    int verbosity = 0, bind = 0, scope = 0, nameLength = 0, descriptionLength = 0;
    MPI_T_cvar_handle handle;
    if (MPI_T_cvar_get_index(name, &index) == MPI_SUCCESS
        && MPI_T_cvar_get_info(index, NULL, &nameLength, &verbosity, &type, &enumtype, NULL, &descriptionLength, &bind, &scope) == MPI_SUCCESS
        && MPI_T_cvar_handle_alloc(index, NULL, &handle, &count) == MPI_SUCCESS) {
        unsigned long long buffer[4] = {0, 0, 0, 0};
        if (count == 1 && MPI_T_cvar_read(handle, buffer) == MPI_SUCCESS) {
            rc = 0;
            if (type == MPI_INT) *value = *(int *)buffer;
            else if (type == MPI_UNSIGNED) *value = *(unsigned *)buffer;
            else if (type == MPI_UNSIGNED_LONG) *value = (long long)*(unsigned long *)buffer;
            else if (type == MPI_UNSIGNED_LONG_LONG) *value = (long long)*(unsigned long long *)buffer;
            else if (type == MPI_LONG_LONG) *value = *(long long *)buffer;
            else rc = -1;
        }
        MPI_T_cvar_handle_free(&handle);
    }
    MPI_T_finalize();
    return rc;
}

#endif
