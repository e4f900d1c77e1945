"""API views: validate the request, call a service or selector, serialize the result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, Throttled
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from studyapp.api.parsers import JSONParser
from studyapp.api.permissions import (
    RESEARCHER_PERMISSIONS,
    RESEARCHER_THROTTLES,
    FailedAuthenticationThrottle,
)
from studyapp.api.serializers import (
    ParticipantSerializer,
    QuestionnaireDetailSerializer,
    QuestionnaireSerializer,
    QuestionnaireUploadSerializer,
    RatingRowSerializer,
    StudyCreateSerializer,
    StudyPlanSerializer,
    StudyPlanSetSerializer,
    StudyProgressSerializer,
    StudyQuestionnaireSerializer,
    StudyQuestionnaireSetSerializer,
    StudySerializer,
    StudyStatusSerializer,
)
from studyapp.exports import (
    ratings_download,
    ratings_items,
    ratings_rows_build,
    ratings_write_csv,
    study_covariates,
)
from studyapp.models import Participant, Questionnaire, Study, StudyPlanFrozenError
from studyapp.monitoring import study_progress
from studyapp.permissions import (
    PARTICIPANTS_VIEW,
    QUESTIONNAIRE_STORE,
    QUESTIONNAIRE_VIEW,
    RATINGS_VIEW,
    STUDY_ADD,
    STUDY_CHANGE,
    STUDY_VIEW,
)
from studyapp.prolific.services import prolific_client_or_none, study_status_set
from studyapp.studies.services import (
    StudyConflictError,
    StudyImportError,
    questionnaire_find,
    questionnaire_import,
    study_create_from_explanations,
    study_plan_set,
    study_questionnaire_set,
)
from studyformats.questionnaire import QuestionnaireError, questionnaire_from_data


class ResearcherAPIView(APIView):
    """Every endpoint: session or token authentication, staff with the admin's model
    permissions for the action (``required_permissions``), throttled."""

    # Token first: an anonymous caller then gets 401 with a WWW-Authenticate header.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = RESEARCHER_PERMISSIONS
    throttle_classes = RESEARCHER_THROTTLES

    def handle_exception(self, exc: Exception) -> Response:
        # Only a refused call is counted or throttled; one that authenticates never is.
        if isinstance(exc, NotAuthenticated | AuthenticationFailed):
            wait = FailedAuthenticationThrottle().failure_record(self.request)
            if wait is not None:
                exc = Throttled(wait)
        return super().handle_exception(exc)


class LargePagePagination(PageNumberPagination):
    """100 rows a page by default; ``page_size`` up to 1000 for scripts that fetch everything."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def study_for(slug: str) -> Study:
    return get_object_or_404(Study, slug=slug)


def studies_queryset() -> QuerySet[Study]:
    return Study.objects.prefetch_related("conditions").order_by("-created_at", "slug")


class StudyListCreateView(ResearcherAPIView, generics.ListCreateAPIView):
    """List studies, or create one from an explanations file (multipart upload)."""

    required_permissions = {"GET": STUDY_VIEW, "POST": STUDY_ADD}
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Study]:
        return studies_queryset()

    def get_serializer_class(self) -> type[BaseSerializer]:
        return StudyCreateSerializer if self.request.method == "POST" else StudySerializer

    @extend_schema(
        request={"multipart/form-data": StudyCreateSerializer},
        responses={
            201: StudySerializer,
            400: OpenApiResponse(
                description="Bad upload: every bad line listed as 'line N: problem' under "
                "'explanations', a plan that cannot be read under 'plan' or 'plan_file'; "
                "or a conflict with the stored study under 'detail'."
            ),
            409: OpenApiResponse(
                description="The study exists and has gone live: its plan cannot change."
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = StudyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            study = study_create_from_explanations(
                slug=data["slug"],
                records=data["explanations"],
                title=data.get("title") or None,
                completion_code=data.get("completion_code") or None,
                per_condition=data.get("per_condition"),
                live=data["live"],
                plan=data.get("plan") or data.get("plan_file"),
            )
        except StudyPlanFrozenError as exc:
            return Response(
                {"detail": f"nothing was imported: {exc}"}, status=status.HTTP_409_CONFLICT
            )
        except StudyConflictError as exc:
            return Response(
                {"detail": f"nothing was imported: {exc}"}, status=status.HTTP_400_BAD_REQUEST
            )
        return Response(StudySerializer(study).data, status=status.HTTP_201_CREATED)


class StudyDetailView(ResearcherAPIView, generics.RetrieveAPIView):
    required_permissions = {"GET": STUDY_VIEW}
    serializer_class = StudySerializer
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Study]:
        return studies_queryset()


class StudyStatusView(ResearcherAPIView):
    """Open, pause or close a study; 409 when it cannot go there from its current status."""

    required_permissions = {"POST": STUDY_CHANGE}
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        request=StudyStatusSerializer,
        responses={
            200: StudySerializer,
            409: OpenApiResponse(description="The study cannot change to that status now."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for(slug)
        serializer = StudyStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = serializer.validated_data["status"]
        if study.status == target:
            return Response(StudySerializer(study).data)
        client = prolific_client_or_none()
        try:
            changed, prolific_note = study_status_set(
                study=study, status=target, client=client, by=request.user
            )
        finally:
            if client is not None:
                client.close()
        if not changed:
            return Response(
                {"detail": f"a {study.status} study cannot be set to {target}"},
                status=status.HTTP_409_CONFLICT,
            )
        data = dict(StudySerializer(study).data)
        if prolific_note:
            data["prolific_note"] = prolific_note
        return Response(data)


class StudyPlanView(ResearcherAPIView):
    """A study's registered analysis plan: read it, register one, or remove it.

    The plan can change only until the study goes live; afterwards a change gets 409.
    """

    required_permissions = {"GET": STUDY_VIEW, "PUT": STUDY_CHANGE, "DELETE": STUDY_CHANGE}
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(responses=StudyPlanSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(StudyPlanSerializer(study_for(slug)).data)

    @extend_schema(
        request={
            "application/json": StudyPlanSetSerializer,
            "multipart/form-data": StudyPlanSetSerializer,
        },
        responses={
            200: StudyPlanSerializer,
            400: OpenApiResponse(description="No plan, more than one, or one that cannot be read."),
            409: OpenApiResponse(description="The study has gone live: its plan is frozen."),
        },
    )
    def put(self, request: Request, slug: str) -> Response:
        study = study_for(slug)
        serializer = StudyPlanSetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._plan_set(study, serializer.validated_data["plan"])

    @extend_schema(
        request=None,
        responses={
            200: StudyPlanSerializer,
            409: OpenApiResponse(description="The study has gone live: its plan is frozen."),
        },
    )
    def delete(self, request: Request, slug: str) -> Response:
        return self._plan_set(study_for(slug), None)

    def _plan_set(self, study: Study, plan: Any) -> Response:
        try:
            study_plan_set(study=study, plan=plan)
        except StudyPlanFrozenError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(StudyPlanSerializer(study).data)


class StudyQuestionnaireView(ResearcherAPIView):
    """The questionnaire a study uses: read it, or choose another stored one.

    The choice can change only until the study's first participant starts; afterwards a
    change gets 409 with the reason.
    """

    required_permissions = {"GET": STUDY_VIEW, "PUT": STUDY_CHANGE}
    parser_classes = [JSONParser, FormParser]

    @extend_schema(responses=StudyQuestionnaireSerializer)
    def get(self, request: Request, slug: str) -> Response:
        study = get_object_or_404(Study.objects.select_related("questionnaire"), slug=slug)
        return Response(StudyQuestionnaireSerializer(study).data)

    @extend_schema(
        request=StudyQuestionnaireSetSerializer,
        responses={
            200: StudyQuestionnaireSerializer,
            400: OpenApiResponse(description="Not NAME or NAME@VERSION, or none stored so."),
            409: OpenApiResponse(
                description="The study has participants: its questionnaire is fixed."
            ),
        },
    )
    def put(self, request: Request, slug: str) -> Response:
        study = get_object_or_404(Study.objects.select_related("questionnaire"), slug=slug)
        serializer = StudyQuestionnaireSetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            questionnaire = questionnaire_find(serializer.validated_data["questionnaire"])
        except StudyImportError as exc:
            return Response({"questionnaire": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            study_questionnaire_set(study=study, questionnaire=questionnaire)
        except StudyConflictError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(StudyQuestionnaireSerializer(study).data)


def questionnaires_queryset() -> QuerySet[Questionnaire]:
    return Questionnaire.objects.prefetch_related("studies").order_by("name", "-version")


class QuestionnaireListView(ResearcherAPIView, generics.ListAPIView):
    """The stored questionnaire versions, or store a document (a JSON body or a file).

    A document is stored as ``questionnaire_import`` stores it: the same document again
    changes nothing (200), a changed one updates the latest version while no study with
    participants uses it, or becomes the next version (201).
    """

    required_permissions = {"GET": QUESTIONNAIRE_VIEW, "POST": QUESTIONNAIRE_STORE}
    parser_classes = [JSONParser, MultiPartParser]
    serializer_class = QuestionnaireSerializer

    def get_queryset(self) -> QuerySet[Questionnaire]:
        return questionnaires_queryset()

    @extend_schema(
        request={
            "application/json": OpenApiTypes.OBJECT,
            "multipart/form-data": QuestionnaireUploadSerializer,
        },
        responses={
            201: QuestionnaireDetailSerializer,
            200: QuestionnaireDetailSerializer,
            400: OpenApiResponse(
                description="A document that cannot be used: one line naming the key (or the "
                "line of a syntax error) under 'document' or 'file'; nothing is stored."
            ),
        },
        description="Store a questionnaire: the document as the JSON body (the JSON shape "
        "of a questionnaire file), or a .toml or .json file as the multipart field 'file'. "
        "201: stored (a new questionnaire or version, or the latest version updated); 200: "
        "the same document was stored already.",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if request.content_type.startswith("multipart/"):
            upload = QuestionnaireUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            document = upload.validated_data["file"]
        else:
            try:
                # A body that is not a JSON object is refused by the format's own check.
                document = questionnaire_from_data(cast(Any, request.data), source="document")
            except QuestionnaireError as exc:
                return Response({"document": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        stored, changed = questionnaire_import(document)
        return Response(
            QuestionnaireDetailSerializer(stored).data,
            status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK,
        )


class QuestionnaireDetailView(ResearcherAPIView):
    """One stored questionnaire: its latest version, or ``?version=N``."""

    required_permissions = {"GET": QUESTIONNAIRE_VIEW}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "version", int, description="The version to return (default: the latest)."
            )
        ],
        responses={
            200: QuestionnaireDetailSerializer,
            400: OpenApiResponse(description="A version that is not a whole number ≥ 1."),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        versions = questionnaires_queryset().filter(name=slug)
        wanted = request.query_params.get("version")
        if wanted is not None:
            if not wanted.isdigit() or int(wanted) < 1:
                return Response(
                    {"version": [f"'{wanted}' is not a version; versions are 1, 2, …"]},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            versions = versions.filter(version=int(wanted))
        stored = versions.first()
        if stored is None:
            raise Http404(f"no questionnaire '{slug}'" + (f" version {wanted}" if wanted else ""))
        return Response(QuestionnaireDetailSerializer(stored).data)


class StudyProgressView(ResearcherAPIView):
    """Live counts: participants by outcome, ratings per condition, pool coverage."""

    required_permissions = {"GET": STUDY_VIEW}

    @extend_schema(responses=StudyProgressSerializer)
    def get(self, request: Request, slug: str) -> Response:
        progress = study_progress(study=study_for(slug))
        return Response(StudyProgressSerializer(progress.as_dict()).data)


class StudyParticipantsView(ResearcherAPIView, generics.ListAPIView):
    required_permissions = {"GET": PARTICIPANTS_VIEW}
    serializer_class = ParticipantSerializer
    pagination_class = LargePagePagination

    def get_queryset(self) -> QuerySet[Participant]:
        study = study_for(self.kwargs["slug"])
        return (
            Participant.objects.filter(study=study)
            .annotate(
                n_rated=Count("assignments", filter=Q(assignments__answered_at__isnull=False))
            )
            .order_by("started_at", "pk")
        )


class StudyRatingsView(ResearcherAPIView, generics.GenericAPIView):
    """The ratings export as JSON, one object per rated item, paginated."""

    required_permissions = {"GET": RATINGS_VIEW}
    serializer_class = RatingRowSerializer
    pagination_class = LargePagePagination

    def get(self, request: Request, slug: str) -> Response:
        study = study_for(slug)
        page = self.paginate_queryset(ratings_items(study))
        rows = ratings_rows_build(page or [], study=study, covariates=study_covariates([study]))
        context = {"questionnaire": study.questionnaire_document}
        return self.get_paginated_response(
            RatingRowSerializer(rows, many=True, context=context).data
        )


class CSVTextRenderer(BaseRenderer):
    """Renders the errors of the CSV endpoint (401, 403, 404) as plain text for CSV clients."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if isinstance(data, str):
            return data.encode(self.charset)
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"]).encode(self.charset)
        return str(data).encode(self.charset)


class StudyRatingsCSVView(ResearcherAPIView):
    """The ratings export in the CSV format of docs/formats.md (what ``export_ratings`` writes)."""

    required_permissions = {"GET": RATINGS_VIEW}
    renderer_classes = [CSVTextRenderer, JSONRenderer]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV file")}
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        study = study_for(slug)
        # A plain response: the body is CSV whatever the Accept header asked for.
        response = ratings_download(study.slug)
        ratings_write_csv(study, response)
        return response
